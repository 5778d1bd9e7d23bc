"""One error hierarchy for the library, mapped to exit codes once, by the command line.

Library code raises these (never prints or exits); ``trtgen.cli`` turns each into a one-line message
and the exit code its class carries:

* 0: done; 1: done, but some rows were rejected (set by the command, not by an exception);
* 2: :class:`UsageError`, :class:`ModelError`: refused before any work (bad option, list or model);
* 3: :class:`RunError`: failed part way (I/O error, disk full, interrupted); a generate run resumes
  with ``--resume``.
"""

from __future__ import annotations

__all__ = ["EXIT_OK", "EXIT_REJECTS", "EXIT_USAGE", "EXIT_FAILED", "TrtgenError", "UsageError", "MissingInputError", "ModelError", "RunError"]

EXIT_OK = 0
EXIT_REJECTS = 1
EXIT_USAGE = 2
EXIT_FAILED = 3


class TrtgenError(Exception):
    """Base of every foreseeable trtgen failure; ``exit_code`` is what the command line exits with."""

    exit_code = EXIT_FAILED


class UsageError(TrtgenError, ValueError):
    """A bad option, input list, style clip or text: nothing was done (exit 2)."""

    exit_code = EXIT_USAGE


class MissingInputError(UsageError, FileNotFoundError):
    """An input file or directory that an option names does not exist (exit 2)."""


class ModelError(TrtgenError, ValueError):
    """The model directory is incomplete, corrupt, or from an incompatible trtgen (exit 2)."""

    exit_code = EXIT_USAGE


class RunError(TrtgenError, RuntimeError):
    """The run failed part way (I/O error, disk full, interrupted); what was written is kept (exit 3)."""

    exit_code = EXIT_FAILED
