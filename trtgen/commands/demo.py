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
from trtgen.engine.voice import VoiceSpec
from trtgen.engine.shipped import demo_sentences, shipped_styles
from trtgen.engine.synthesis import SynthesisOptions
from trtgen.engine.vocoder import GriffinLimOptions

__all__ = ["DemoResult", "demo_rows", "run_demo"]

DEMO_COPIES = "dropout0.5:0.5,dropout0.3:0.3"


def demo_rows(sentences: int | None = None, repeats: int = 1) -> list[dict[str, str]]:
    """Infer-list rows pairing each demo sentence with each shipped style clip; ``repeats`` > 1 adds the
    same pairs again under new ids (new dropout and phase draws: more work for benchmarks)."""
    rows = []
    texts, styles = demo_sentences()[:sentences], shipped_styles()
    for repeat in range(repeats):
        tag = f"-r{repeat}" if repeat else ""
        for s, text in enumerate(texts):
            for name, clip in styles.items():
                rows.append({"id": f"demo-{s:02d}-{name}{tag}", "text": text, "style": str(clip), "style_speaker": name})
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
            list_path=listing,
            out_dir=synthetic,
            voice=VoiceSpec(model_dir=model_dir, synthesis=SynthesisOptions(batch_size=16, vocoder=GriffinLimOptions())),
            copies=parse_copies(DEMO_COPIES),
            resume=True,
        ),
        progress,
    )
    manifests = write_manifests(synthetic, out / "manifests", (), ManifestOptions(formats=("openseq2seq", "nemo")))
    first_copy = synthetic / report.copies[0].name
    examples = [first_copy / f"demo-00-{clip.stem}.wav" for clip in shipped_styles().values()]
    return DemoResult(out, report, manifests, [e for e in examples if e.exists()])
