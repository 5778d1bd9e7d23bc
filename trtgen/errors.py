"""One error hierarchy for the library, mapped to exit codes once, by the command line.

Library code raises these (never prints or exits); ``trtgen.cli`` turns each into a one-line message
and the exit code its class carries:

* 0: done; 1: done, but some rows were rejected (set by the command, not by an exception);
* 2: :class:`UsageError`, :class:`ModelError`: refused before any work (bad option, list or model, a
  copy directory another run is writing). Two kinds of usage error only reject their row when
  :meth:`trtgen.Voice.stream` meets them: :class:`TextError` (a transcript the model cannot speak) and
  :class:`StyleError` (a style clip or embedding it cannot use);
* 3: :class:`RunError`: failed part way (:class:`OutputError`: disk full, read-only or unwritable
  output; :class:`Interrupted`: SIGINT or SIGTERM); a generate run resumes with ``--resume``.
  :class:`SynthesisError` (the decoder stopped too early to vocode one utterance) also exits 3 when a
  command lets it through, but it is not a :class:`RunError`: rerunning gives the same result, and a
  stream only rejects its row.
"""

from __future__ import annotations

import errno
import os
from typing import Any

__all__ = [
    "EXIT_OK", "EXIT_REJECTS", "EXIT_USAGE", "EXIT_FAILED", "TrtgenError", "UsageError", "MissingInputError", "ModelError",
    "TextError", "StyleError", "SynthesisError", "RunError", "OutputError", "Interrupted", "describe_os_error",
]

EXIT_OK = 0
EXIT_REJECTS = 1
EXIT_USAGE = 2
EXIT_FAILED = 3


class TrtgenError(Exception):
    """Base of every foreseeable trtgen failure; ``exit_code`` is what the command line exits with."""

    exit_code = EXIT_FAILED


class UsageError(TrtgenError, ValueError):
    """A bad option, argument, input list, style clip or text: nothing was done (exit 2)."""

    exit_code = EXIT_USAGE


class MissingInputError(UsageError, FileNotFoundError):
    """An input file or directory that an option names does not exist (exit 2)."""


class TextError(UsageError):
    """A transcript the model cannot speak as written (empty, too long, characters it would not speak or
    would mislabel): one row is rejected, the run goes on."""


class StyleError(UsageError):
    """A style the model cannot use: a clip that is missing, unreadable or not audio, or an embedding of
    the wrong shape or type or with non-finite values. One row is rejected, the run goes on."""


class SynthesisError(TrtgenError, RuntimeError):
    """The model ran on valid input but gave nothing usable: the decoder stopped too early to vocode.

    Not a :class:`UsageError` (text, style and dropout were all valid, and another seed or dropout may
    speak the row) nor a :class:`RunError` (nothing to resume: the audio is a pure function of its
    inputs). A stream rejects the row; :meth:`trtgen.Voice.synthesize` raises it (exit 3 if it escapes).
    """

    exit_code = EXIT_FAILED


class ModelError(TrtgenError, ValueError):
    """The model directory is incomplete, corrupt, or from an incompatible trtgen (exit 2)."""

    exit_code = EXIT_USAGE


class RunError(TrtgenError, RuntimeError):
    """The run failed part way (I/O error, disk full, interrupted); what was written is kept (exit 3)."""

    exit_code = EXIT_FAILED


_ADVICE = {
    errno.ENOSPC: "free space and rerun with --resume",
    errno.EDQUOT: "free space (disk quota exceeded) and rerun with --resume",
    errno.EROFS: "choose a writable --out (or remount it read-write) and rerun with --resume",
    errno.EACCES: "check the permissions of that path and rerun with --resume",
    errno.EPERM: "check the permissions of that path and rerun with --resume",
}


def describe_os_error(error: OSError, path: str | os.PathLike[str] | None = None, doing: str = "writing") -> str:
    """One line naming the cause, the path and what to do: "no space left on device while writing
    out/c/x.wav; free space and rerun with --resume". ``path`` (the file the user knows, not a temporary
    one) comes first, then the error's own: a rename's destination, or the file it names."""
    where = path or error.filename2 or error.filename
    cause = error.strerror or str(error) or type(error).__name__
    if cause[:1].isupper() and not cause[1:2].isupper():
        cause = cause[0].lower() + cause[1:]
    line = f"{cause} while {doing} {os.fsdecode(where)}" if where else cause
    advice = _ADVICE.get(error.errno or 0)
    return f"{line}; {advice}" if advice else line


class OutputError(RunError):
    """Writing an output failed (disk full, read-only file system, permissions...): the message names the
    path and the cause; what was written before is kept and ``--resume`` continues (exit 3)."""

    def __init__(self, error: OSError, path: str | os.PathLike[str] | None = None, doing: str = "writing") -> None:
        self.errno = error.errno
        self._arguments = (error, path, doing)
        super().__init__(describe_os_error(error, path, doing))

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from its own arguments when pickled (a cluster worker's error reaching the driver).
        return type(self), self._arguments


class Interrupted(RunError):
    """SIGINT or SIGTERM stopped the run after the utterance being written; records are flushed and
    ``--resume`` continues (exit 3). ``partial`` is the command's report of what was done."""

    def __init__(self, message: str, partial: Any = None) -> None:
        self.partial = partial
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (str(self), self.partial)
