"""``trtgen demo``: the whole pipeline on material that ships inside the package.

The shipped voice (a small Tacotron-GST trained on espeak-ng speech, see docs/shipped-voice.md) speaks a few
sentences in the style of each shipped reference clip, in two dataset copies with different prenet
dropout; then the training manifests are written. Nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trtgen.fileio import write_jsonl
from trtgen.progress import Progress
from trtgen.commands.generate import GenerateOptions, GenerateReport, parse_copies, run_generate
from trtgen.commands.manifests import ManifestOptions, ManifestResult, write_manifests
from trtgen.engine.artifact import default_model_dir
from trtgen.engine.synthesis import SynthesisOptions
from trtgen.engine.vocoder import GriffinLimOptions
from trtgen.errors import UsageError

__all__ = ["DemoResult", "VOICES_DIR", "demo_rows", "demo_styles", "demo_sentences", "run_demo"]

VOICES_DIR = Path(__file__).resolve().parent.parent / "voices"
DEMO_COPIES = "dropout0.5:0.5,dropout0.3:0.3"


def demo_styles() -> list[Path]:
    """The reference clips shipped with the package (one per espeak-ng voice of the training corpus)."""
    clips = sorted((VOICES_DIR / "styles").glob("*.wav"))
    if not clips:
        raise UsageError(f"no demo style clips in {VOICES_DIR / 'styles'}: the installation is incomplete")
    return clips


def demo_sentences() -> list[str]:
    path = VOICES_DIR / "demo_sentences.txt"
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip() and not line.startswith("#")]


def demo_rows(sentences: int | None = None, repeats: int = 1) -> list[dict[str, str]]:
    """Infer-list rows pairing each demo sentence with each shipped style clip; ``repeats`` > 1 adds the
    same pairs again under new ids (new dropout and phase draws: more work for benchmarks)."""
    rows = []
    for repeat in range(repeats):
        tag = f"-r{repeat}" if repeat else ""
        for s, text in enumerate(demo_sentences()[:sentences]):
            for clip in demo_styles():
                rows.append({"id": f"demo-{s:02d}-{clip.stem}{tag}", "text": text, "style": str(clip), "style_speaker": clip.stem})
    return rows


@dataclass
class DemoResult:
    out: Path
    generate: GenerateReport
    manifests: ManifestResult
    examples: list[Path]


def run_demo(out: Path, model_dir: Path | None = None, *, sentences: int | None = None, progress: Progress | None = None) -> DemoResult:
    """Write an infer list pairing every sentence with every style clip, generate, write manifests."""
    out = Path(out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    listing = out / "infer.jsonl"
    write_jsonl(listing, demo_rows(sentences))
    synthetic = out / "synthetic"
    report = run_generate(
        GenerateOptions(
            model_dir=model_dir or default_model_dir(),
            list_path=listing,
            out_dir=synthetic,
            copies=tuple(parse_copies(DEMO_COPIES, default_dropout=0.5, base_seed=0)),
            synthesis=SynthesisOptions(batch_size=16, vocoder=GriffinLimOptions()),
            resume=True,
        ),
        progress,
    )
    manifests = write_manifests(synthetic, out / "manifests", (), ManifestOptions(formats=("openseq2seq", "nemo")))
    first_copy = synthetic / report.copies[0].name
    examples = [first_copy / f"demo-00-{clip.stem}.wav" for clip in demo_styles()]
    return DemoResult(out, report, manifests, [e for e in examples if e.exists()])
