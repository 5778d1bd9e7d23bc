"""How long-running library calls report progress without printing: the caller passes a sink.

The command line passes a rich progress bar with rate and ETA (:mod:`trtgen.console`); Python callers
pass nothing (:class:`NoProgress`) or their own object with these two methods.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Progress", "NoProgress", "StepProgress"]


class Progress(Protocol):
    def start(self, description: str, total: int) -> None:
        """A new phase of ``total`` units (utterances, files) begins."""
        ...

    def advance(self, count: int = 1, audio_seconds: float = 0.0) -> None:
        """``count`` more units are done, holding ``audio_seconds`` of audio."""
        ...


class NoProgress:
    """Reports nothing."""

    def start(self, description: str, total: int) -> None:
        pass

    def advance(self, count: int = 1, audio_seconds: float = 0.0) -> None:
        pass


class StepProgress:
    """Counts one unit at a time and reports to a :class:`Progress` every ``every`` units and at the end
    (per-file loops over hundreds of thousands of files, where a report per file would cost more than the file)."""

    def __init__(self, progress: Progress | None, description: str, total: int, every: int = 256) -> None:
        self.progress, self.total, self.every, self.done, self.reported = progress or NoProgress(), total, every, 0, 0
        self.progress.start(description, total)

    def step(self) -> None:
        self.done += 1
        if self.done % self.every == 0 or self.done == self.total:
            self.progress.advance(self.done - self.reported)
            self.reported = self.done
