"""How long-running library calls report progress without printing: the caller passes a sink.

The command line passes a rich progress bar with rate and ETA (:mod:`trtgen.console`); Python callers
pass nothing (:class:`NoProgress`) or their own object with these two methods.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Progress", "NoProgress"]


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
