"""One interface for every runtime: run a graph of the model directory on named tensors.

The decode loop, the encoders and the postnet talk only to :class:`GraphRunner`, so there is one
pipeline whatever executes the graphs (ONNX Runtime on the CPU or CUDA, TensorRT). Arrays are of the
backend's array module ``xp``: numpy on the CPU, CuPy on a GPU, so that tensors stay on the device
between calls.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, Sequence
from trtgen.errors import UsageError

__all__ = ["GraphRunner", "Backend", "BackendUnavailable"]


class BackendUnavailable(UsageError):
    """The requested backend or device cannot run here; the message says what to install."""


class GraphRunner(Protocol):
    """An executable graph."""

    name: str
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]

    def run(self, feeds: Mapping[str, Any], outputs: Sequence[str] | None = None) -> dict[str, Any]:
        """Run on ``feeds`` (arrays of ``xp``, keyed by input name); return the named outputs."""
        ...


class Backend(Protocol):
    name: str
    device: str
    xp: Any
    """numpy or cupy: the module whose arrays this backend consumes and returns."""
    threads: int | None
    """CPU threads the backend was given (None: all cores)."""

    def load(self, graph: str, *, threads: int | None = None, spinning: bool = True) -> GraphRunner:
        """A runner for one graph of the model directory; ``threads`` (CPU only) overrides the backend's;
        ``spinning=False`` lets idle worker threads sleep (for graphs that share the cores with others)."""
        ...

    def describe(self) -> str:
        """One line for logs and result tables (provider, device name, versions)."""
        ...
