"""The examples users copy run as written: every ```python block of README.md (in order, in one
namespace, in a fresh directory) and the docstring examples of ``trtgen`` and ``trtgen.engine.voice``."""

from __future__ import annotations

import doctest
import importlib
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def python_blocks(markdown: str) -> list[tuple[int, str]]:
    """(line number of the opening fence, code) of each ```python block."""
    return [(markdown.count("\n", 0, match.start()) + 1, match.group(1)) for match in PYTHON_BLOCK.finditer(markdown)]


def test_the_readme_has_python_examples() -> None:
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert blocks, "README.md has no ```python block"
    elided = [line for line, code in blocks if re.search(r"^\s*\.\.\.|, \.\.\.[\]\)]", code, re.MULTILINE)]
    assert not elided, f"README.md: the example(s) at line(s) {elided} leave code out with ..."


def test_every_python_block_of_the_readme_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # examples write their files into the current directory
    namespace: dict[str, object] = {"__name__": "__readme__"}
    for line, code in python_blocks(README.read_text(encoding="utf-8")):
        exec(compile(code, f"{README}:{line + 1}", "exec"), namespace)  # noqa: S102 - the README's own examples
    assert list(tmp_path.glob("*.wav")), "the README's examples wrote no audio"


@pytest.mark.parametrize("module", ["trtgen", "trtgen.engine.voice"])
def test_the_docstring_examples_run(module: str) -> None:
    results = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert results.attempted > 0, f"{module} has no docstring examples"
    assert results.failed == 0, f"{results.failed} docstring example(s) of {module} failed (the report is above)"
