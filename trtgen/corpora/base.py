"""What every corpus reader shares: the record of a rejected input row.

A run over a large corpus must never die on one bad row: readers return the good rows plus one
:class:`Reject` per bad one, naming the file, the line and the reason, and the caller writes them
to a rejects file and logs a summary.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from trtgen.fileio import write_jsonl

logger = logging.getLogger(__name__)

__all__ = ["Reject", "shorten", "write_rejects", "log_rejects"]


@dataclass(frozen=True)
class Reject:
    """An input row that was skipped, with where it came from and why."""

    source: str
    """The file (or directory) the row came from."""
    line: int | None
    """1-based line number in ``source``; None when the problem is not tied to one line."""
    reason: str
    item: str = ""
    """The row's id or its raw text (shortened), to find it again."""

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        item = f" [{self.item}]" if self.item else ""
        return f"{where}:{item} {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def shorten(text: str, limit: int = 120) -> str:
    """A raw line cut to ``limit`` characters for reject records."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def write_rejects(path: str | Path, rejects: Iterable[Reject]) -> int:
    """Write rejects as JSON lines (``source``, ``line``, ``reason``, ``item``), atomically."""
    return write_jsonl(path, (r.to_dict() for r in rejects))


def log_rejects(rejects: Sequence[Reject], what: str, *, show: int = 5) -> None:
    """One warning with the count and the first few rejects, so a run's log stays readable."""
    if not rejects:
        return
    logger.warning("%d %s rejected; first: %s", len(rejects), what, "; ".join(str(r) for r in rejects[:show]))
