"""Progress bars (rate and ETA) and end-of-command summary tables, on stderr via rich."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

__all__ = ["console", "SynthesisProgress", "synthesis_progress", "print_table"]

console = Console(stderr=True)
if not console.is_terminal:
    console.width = 120  # logs and CI: wide enough for the summary tables


class _RateColumn(ProgressColumn):
    """Utterances per second and audio seconds per second since the start."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        if elapsed <= 0:
            return Text("- utt/s  - audio-s/s", style="progress.data.speed")
        audio = float(task.fields.get("audio_seconds", 0.0))
        return Text(f"{task.completed / elapsed:.2f} utt/s  {audio / elapsed:.1f} audio-s/s", style="progress.data.speed")


class SynthesisProgress:
    def __init__(self, progress: Progress, task: int) -> None:
        self.progress = progress
        self.task = task
        self.audio_seconds = 0.0

    def advance(self, utterances: int = 1, audio_seconds: float = 0.0) -> None:
        self.audio_seconds += audio_seconds
        self.progress.update(self.task, advance=utterances, audio_seconds=self.audio_seconds)


@contextmanager
def synthesis_progress(total: int, description: str, *, enabled: bool = True) -> Iterator[SynthesisProgress]:
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled,
        transient=False,
    )
    with progress:
        task = progress.add_task(description, total=total, audio_seconds=0.0)
        yield SynthesisProgress(progress, task)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    table = Table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index == 0 else "right")
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    console.print(table)

