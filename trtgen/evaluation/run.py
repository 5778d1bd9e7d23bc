"""``trtgen eval``: does a voice work? Held-out sentences decoded and measured against espeak-ng.

The default voice is trained on espeak-ng speech (``export/train``), so espeak-ng's rendering of a
held-out sentence in a voice is the target the model should reproduce. For every held-out sentence
and voice the model speaks the sentence conditioned on a *different* held-out clip of that voice
(real style transfer, never the target itself) and the evaluation measures:

* attention: the argmax path is monotonic, makes no big jumps and covers the text (:class:`AlignmentRule`);
* stopping: the stop token fired before the decoding cap;
* duration: Pearson r between the output's and espeak-ng's durations;
* MCD-DTW: mel-cepstral distortion after dynamic time warping, each espeak-ng frame counted once
  (:func:`mel_cepstrum`, :func:`mcd_dtw`; the usual mean along the path is reported beside it);
* style: conditioning on a voice moves the output's mean log-mel towards that voice
  (:meth:`StyleSpace.nearest_relative`); the absolute nearest voice by mean log-mel and F0 is
  reported beside it.

Both signals go through the same code: waveform -> :func:`trtgen.engine.audio.trim_silence` ->
:func:`trtgen.engine.audio.stft_magnitude` -> :func:`trtgen.engine.audio.log_mel`. The model's audio comes out of
Griffin-Lim with OpenSeq2Seq's ``magnitude ** 1.5`` sharpening, which by itself moves espeak-ng's
own magnitudes about 3.5 dB MCD away from the rendering and shifts its mean log-mel. So the voice
statistics of the style check come from espeak-ng renderings put through that same vocoder path, and
that path's MCD (the "vocoder floor", a perfect model's score) is reported beside the models'.
With ``compare_random`` the same evaluation runs on a randomly initialised model of the same
configuration (written by the caller's ``export_random``, the exporter's side, which needs TensorFlow),
which must be far worse, so the metrics demonstrably tell.
Only numpy is used here; matplotlib is imported only to draw the plots.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from trtgen.engine.alignment import check_alignment
from trtgen.engine.artifact import ModelCard, load_model
from trtgen.engine.quality import calibrate
from trtgen.engine.audio import AudioError, load_audio, stft_magnitude
from trtgen.engine.config import AudioConfig
from trtgen.engine.randomness import utterance_key
from trtgen.engine.text import last_spoken_index
from trtgen.engine.rows import Rejected, Row
from trtgen.engine.voice import Voice
from trtgen.errors import UsageError
from trtgen.fileio import atomic_write
from trtgen.progress import NoProgress, Progress
from trtgen.evaluation.metrics import (
    EvalError,
    SpeechFeatures,
    StyleSpace,
    mcd_dtw,
    mel_cepstrum,
    nearest_voice,
    speech_features,
    speech_frames,
)
from trtgen.evaluation.plots import choose_plot_ids, plot_utterances
from trtgen.evaluation.report import (
    REPORT_NAME,
    EvalItem,
    EvalOptions,
    EvalReport,
    ModelEvaluation,
    UtteranceResult,
    content_margin,
    mean_or_nan,
    run_checks,
    score_utterance,
    summarise,
)

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------
# The evaluation job


def _select_items(corpus: Any, sentences: int, first: int = 0) -> tuple[list[EvalItem], dict[str, list[Any]]]:
    """Held-out sentences ``first .. first + sentences - 1`` (by id) in every voice, each with a reference
    clip of the same voice saying the next held-out sentence (cyclically), and the training renderings."""
    voices = corpus.voices()
    heldout: dict[str, dict[str, Any]] = {v: {} for v in voices}
    train: dict[str, list[Any]] = {v: [] for v in voices}
    for u in corpus.utterances:
        if u.voice not in heldout:
            continue
        if u.split == "heldout":
            heldout[u.voice][u.sentence_id] = u
        else:
            train[u.voice].append(u)
    common = sorted(set.intersection(*(set(h) for h in heldout.values()))) if voices else []
    if len(common) < 2:
        raise EvalError(
            f"{corpus.root}: {len(common)} held-out sentence(s) rendered in every voice; need at least 2 "
            "(one to speak, another as the style reference)"
        )
    chosen = common[first : first + sentences]
    if not chosen:
        raise EvalError(f"{corpus.root}: {len(common)} held-out sentences; none left after skipping {first}")
    if len(chosen) < sentences:
        logger.warning("%s: only %d held-out sentences from number %d; evaluating those", corpus.root, len(chosen), first)
    items = []
    for voice in voices:
        for position, sentence_id in enumerate(chosen, start=first):
            target = heldout[voice][sentence_id]
            reference = heldout[voice][common[(position + 1) % len(common)]]
            items.append(
                EvalItem(
                    index=len(items), id=target.id, voice=voice, sentence_id=sentence_id, text=target.text,
                    reference_id=reference.id, reference_wav=corpus.wav_path(reference),
                    target_wav=corpus.wav_path(target), espeak_duration_s=float(target.duration_s),
                )
            )
    return items, train


def _vocoded(paths: Sequence[Path], audio: AudioConfig, seed: int, batch_size: int = 8) -> list[np.ndarray]:
    """espeak-ng renderings put through the model's own vocoder path: STFT magnitude -> Griffin-Lim
    (same options, ``** magnitude_power`` sharpening included). A perfect model would output exactly
    this, so statistics of these waveforms are what the model's outputs are compared with."""
    from trtgen.engine.vocoder import GriffinLimOptions, griffin_lim

    magnitudes = [stft_magnitude(load_audio(p, audio.sample_rate), audio) for p in paths]
    keys = [utterance_key(seed, str(p), "griffin_lim_reference") for p in paths]
    order = sorted(range(len(paths)), key=lambda i: magnitudes[i].shape[0])
    waves: list[np.ndarray] = [np.zeros(0, np.float32)] * len(paths)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        for i, wave in zip(batch, griffin_lim([magnitudes[i] for i in batch], [keys[i] for i in batch], GriffinLimOptions(), audio)):
            waves[i] = np.asarray(wave, dtype=np.float32)
    return waves


def _style_space(corpus: Any, train: dict[str, list[Any]], items: list[EvalItem], audio: AudioConfig, options: EvalOptions) -> StyleSpace:
    """Voice statistics from vocoded training renderings (:func:`_vocoded`): like is compared with
    like. Measured on the default voices: with plain renderings, Griffin-Lim's sharpening alone moves
    a quarter of espeak-ng's own vocoded renderings to the wrong voice by mean log-mel."""
    features: dict[str, list[SpeechFeatures]] = {}
    for voice, utterances in train.items():
        pool = sorted(utterances, key=lambda u: u.sentence_id)
        if not pool:
            # A corpus without training renderings (a tiny test corpus): use the held-out targets.
            logger.warning("voice %s: no training renderings; style statistics come from held-out ones", voice)
            paths = [item.target_wav for item in items if item.voice == voice]
        else:
            count = min(options.style_stats_utterances, len(pool))
            picks = np.linspace(0, len(pool) - 1, count).round().astype(int)
            paths = [corpus.wav_path(pool[i]) for i in dict.fromkeys(picks.tolist())]
        features[voice] = [speech_features(w, audio, options.num_cepstra) for w in _vocoded(paths, audio, options.seed)]
    return StyleSpace.fit(features)


@dataclass
class _References:
    """What the models' numbers are read against (see :attr:`EvalReport.mcd_anchors`)."""

    mcd_anchors: dict[str, dict[str, float]]
    style_ceiling: dict[str, float]
    style_ceiling_absolute: dict[str, float]
    content_ceiling: dict[str, float]
    voiced_fraction_anchors: dict[str, dict[str, float]]


def _references(
    items: list[EvalItem],
    targets: dict[str, SpeechFeatures],
    space: StyleSpace,
    audio: AudioConfig,
    options: EvalOptions,
    distractors: dict[str, list[str]],
) -> _References:
    voices = list(dict.fromkeys(item.voice for item in items))
    by_key = {(item.voice, item.sentence_id): item for item in items}
    sentence_ids = list(dict.fromkeys(item.sentence_id for item in items))[: options.reference_sentences]
    subset = [item for item in items if item.sentence_id in sentence_ids]
    floor: dict[str, float] = {}
    ceiling_absolute: dict[str, bool] = {}
    means: dict[str, np.ndarray] = {}
    vocoded_voiced: dict[str, float] = {}
    for item, wave in zip(subset, _vocoded([item.target_wav for item in subset], audio, options.seed)):
        vocoded = speech_features(wave, audio, options.num_cepstra)
        floor[item.id] = mcd_dtw(vocoded.cepstrum, targets[item.id].cepstrum)
        ceiling_absolute[item.id] = nearest_voice(space.distances(vocoded)["combined"]) == item.voice
        means[item.id] = vocoded.mean_log_mel
        vocoded_voiced[item.id] = vocoded.voiced_fraction
    voice_of = {item.id: item.voice for item in subset}
    ceiling = {key: voice == voice_of[key] for key, voice in space.nearest_relative(means).items()}
    other_voice: dict[str, float] = {}
    other_sentence: dict[str, float] = {}
    content: dict[str, bool] = {}
    for item in items:
        target = targets[item.id].cepstrum
        if len(voices) > 1:
            next_voice = voices[(voices.index(item.voice) + 1) % len(voices)]
            candidate = targets[by_key[next_voice, item.sentence_id].id].cepstrum
            other_voice[item.id] = mcd_dtw(candidate, target)
            # The content check on the right words in the next voice: how far the check can see past a
            # voice that is not quite the target's.
            margin = content_margin(candidate, other_voice[item.id], [targets[d].cepstrum for d in distractors[item.id]])
            if margin is not None:
                content[item.id] = margin > 0
        reference = targets.get(item.reference_id)
        if reference is None:
            reference = speech_features(load_audio(item.reference_wav, audio.sample_rate), audio, options.num_cepstra)
        other_sentence[item.id] = mcd_dtw(reference.cepstrum, target)
    anchors: dict[str, dict[str, float]] = {}
    style: dict[str, float] = {}
    style_absolute: dict[str, float] = {}
    content_ceiling: dict[str, float] = {}
    voiced: dict[str, dict[str, float]] = {}
    for scope in [*voices, "all"]:
        ids = [item.id for item in items if scope in ("all", item.voice)]
        content_ceiling[scope] = mean_or_nan(content[i] for i in ids if i in content)
        voiced[scope] = {
            "espeak": mean_or_nan(targets[i].voiced_fraction for i in ids),
            "espeak_vocoded": mean_or_nan(vocoded_voiced[i] for i in ids if i in vocoded_voiced),
        }
        anchors[scope] = {
            "vocoder_floor": mean_or_nan(floor[i] for i in ids if i in floor),
            "same_sentence_other_voice": mean_or_nan(other_voice[i] for i in ids if i in other_voice),
            "same_voice_other_sentence": mean_or_nan(other_sentence[i] for i in ids),
        }
        style[scope] = mean_or_nan(ceiling[i] for i in ids if i in ceiling)
        style_absolute[scope] = mean_or_nan(ceiling_absolute[i] for i in ids if i in ceiling_absolute)
    return _References(anchors, style, style_absolute, content_ceiling, voiced)


def _evaluate_model(
    voice: Voice,
    label: str,
    items: list[EvalItem],
    targets: dict[str, SpeechFeatures],
    space: StyleSpace,
    options: EvalOptions,
    plot_ids: set[str],
    distractors: dict[str, list[str]],
    progress: Progress,
) -> tuple[ModelEvaluation, dict[str, tuple[Any, SpeechFeatures | None]]]:
    started = time.perf_counter()
    card = voice.card
    rows = [Row(item.id, item.text, item.reference_wav, options.dropout, options.seed, tag=item) for item in items]
    results: dict[int, UtteranceResult] = {}
    kept: dict[str, tuple[Any, SpeechFeatures | None]] = {}
    audio = card.audio
    progress.start(f"eval {label}", len(rows))
    for output in voice.stream(rows, alignments=True, mels=True, lookahead=None):
        item = output.tag
        if isinstance(output, Rejected):
            if output.decoded is None:
                raise EvalError(f"held-out sentence {item.sentence_id} in voice {item.voice} cannot be spoken: {output.reason}")
            output = output.decoded  # decoded, but too short to vocode: scored without audio
        ids = output.text_ids
        eos_index = int(np.flatnonzero(ids == card.text.eos_id)[0])
        alignment = None
        if output.alignment is not None:
            alignment = check_alignment(
                output.alignment, eos_index, options.alignment_rule, end_index=last_spoken_index(ids, card.text)
            )
        features = mel_mcd = None
        if output.audio.size:
            features = speech_features(output.audio, audio, options.num_cepstra)
            if output.mel is not None:
                frames = output.mel[speech_frames(output.mel)]
                mel_mcd = mcd_dtw(mel_cepstrum(frames, options.num_cepstra), targets[item.id].cepstrum)
        others = [targets[other] for other in distractors[item.id]] if features is not None else []
        results[item.index] = score_utterance(item, output, ids, eos_index, alignment, features, mel_mcd, targets[item.id], others, space)
        if item.id in plot_ids:
            kept[item.id] = (output, features)
        progress.advance(1, output.duration_s)
    ordered = [results[item.index] for item in items]
    relative = space.nearest_relative({r.id: np.asarray(r.mean_log_mel) for r in ordered if r.mean_log_mel is not None})
    for row in ordered:
        row.style_voice_relative = relative.get(row.id)
    voices = list(dict.fromkeys(item.voice for item in items))
    confusion = {v: dict(Counter(r.style_voice_relative or "none" for r in ordered if r.voice == v)) for v in voices}
    evaluation = ModelEvaluation(
        label=label,
        model_name=card.name,
        model_digest=voice.model.digest,
        model_source=dict(card.source),
        overall=summarise("all", ordered),
        voices={v: summarise(v, [r for r in ordered if r.voice == v]) for v in voices},
        style_confusion=confusion,
        utterances=ordered,
        wall_seconds=time.perf_counter() - started,
    )
    return evaluation, kept


def _quality_gate(voice: Voice, trained: ModelEvaluation, options: EvalOptions) -> dict[str, Any]:
    """The quality gate as this run ran it, its agreement with the evaluation's own checks, and thresholds
    calibrated on the utterances those checks pass; written into the card with ``calibrate_quality``."""
    passing = [r.quality_signals for r in trained.utterances if r.alignment_ok and r.stopped and r.quality_signals]
    summary: dict[str, Any] = {
        "thresholds": voice.quality_thresholds.to_json(),
        "passed": trained.overall.gate_passed,
        "agrees_with_eval": trained.overall.gate_agrees,
        "calibrated_on": len(passing),
    }
    try:
        calibrated = calibrate(passing, voice.quality_thresholds)
    except UsageError as error:
        summary["calibrated"] = None
        summary["calibration_skipped"] = str(error)
        if options.calibrate_quality:
            raise EvalError(f"--calibrate-quality: {error}") from None
        return summary
    summary["calibrated"] = calibrated.to_json()
    if options.calibrate_quality:
        on_disk = load_model(voice.model.directory, verify=False).card  # as written, not as it runs (int8 variants)
        dataclasses.replace(on_disk, defaults={**on_disk.defaults, "quality": calibrated.to_json()}).write(voice.model.directory)
        summary["written_to"] = str(voice.model.directory / "model.json")
    return summary


def _content_distractors(items: list[EvalItem], count: int) -> dict[str, list[str]]:
    """Per item, the ids of ``count`` other held-out items of its voice: the sentences 2, 3, .. after it
    (cyclically), skipping the next one, whose clip is the item's style reference."""
    by_voice: dict[str, list[EvalItem]] = {}
    for item in items:
        by_voice.setdefault(item.voice, []).append(item)
    chosen = {}
    for voice_items in by_voice.values():
        n = len(voice_items)
        for position, item in enumerate(voice_items):
            offsets = range(2, 2 + min(count, max(n - 2, 0)))
            chosen[item.id] = [voice_items[(position + k) % n].id for k in offsets]
    return chosen


ExportRandom = Callable[[ModelCard, Path, int], Path]
"""Writes a randomly initialised model of a card's configuration into a directory, with a seed; returns
the directory. The exporter owns it (``trtgen eval`` passes ``trtgen.commands.export.export_random_model``),
so the evaluation needs no TensorFlow unless a random baseline is asked for."""


def run_eval(options: EvalOptions, progress: Progress | None = None, *, export_random: ExportRandom | None = None) -> EvalReport:
    """Evaluate ``options.voice``'s model on the held-out sentences of ``options.corpus_dir``; write the JSON
    report (and plots) into ``options.out_dir``. Pass/fail is in the returned report's ``checks``.

    Args:
        options: what to evaluate, on which sentences, with which thresholds.
        progress: receives one bar per evaluated model; none by default.
        export_random: builds the random baseline of ``options.compare_random`` (:data:`ExportRandom`);
            required with it, unused without.
    """
    from trtgen.corpora.espeak import CorpusError, load_corpus

    started = time.perf_counter()
    options.validate()
    if options.compare_random and export_random is None:
        raise EvalError("compare_random needs export_random, the function that exports the random model: trtgen.commands.export.export_random_model")
    voice = Voice.load(options.voice)
    model = voice.model
    try:
        corpus = load_corpus(options.corpus_dir)
    except (CorpusError, OSError) as error:
        raise EvalError(str(error)) from None
    audio = model.card.audio
    if corpus.settings.sample_rate != audio.sample_rate:
        logger.warning("corpus at %d Hz, model at %d Hz: the corpus audio is resampled", corpus.settings.sample_rate, audio.sample_rate)
    items, train = _select_items(corpus, options.sentences, options.first_sentence)
    logger.info("%d utterances: %d held-out sentences x %d voices", len(items), len(items) // len(train), len(train))
    space = _style_space(corpus, train, items, audio, options)
    targets: dict[str, SpeechFeatures] = {}
    for item in items:
        try:
            targets[item.id] = speech_features(load_audio(item.target_wav, audio.sample_rate), audio, options.num_cepstra)
        except AudioError as error:
            raise EvalError(f"espeak-ng target unusable: {error}") from None
    distractors = _content_distractors(items, options.content_distractors)
    references = _references(items, targets, space, audio, options, distractors)
    plot_ids = choose_plot_ids(items, options.plots)
    progress = progress or NoProgress()
    random = None
    random_kept: dict[str, tuple[Any, SpeechFeatures | None]] = {}
    with contextlib.ExitStack() as cleanup:
        random_dir = None
        if options.compare_random and export_random is not None:
            # Exported before either model decodes: missing exporter packages end the run before the slow part.
            directory = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="trtgen-eval-random-")))
            random_dir = export_random(model.card, directory, options.random_seed)
        trained, kept = _evaluate_model(voice, "trained", items, targets, space, options, plot_ids, distractors, progress)
        if random_dir is not None:
            random_voice = Voice.load(dataclasses.replace(options.voice, model_dir=random_dir))
            random, random_kept = _evaluate_model(random_voice, "random", items, targets, space, options, plot_ids, distractors, progress)
    quality_gate = _quality_gate(voice, trained, options)
    out = Path(options.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots: list[str] = []
    plots_skipped = None
    if plot_ids:
        try:
            plots = plot_utterances(out / "plots", items, kept, random_kept, targets, trained, random, model.card)
        except ImportError:
            plots_skipped = "matplotlib is not installed: pip install matplotlib (or 'trtgen[bench]') for the plots"
            logger.warning("plots skipped: %s", plots_skipped)
    settings = {
        "model_dir": str(model.directory),
        "corpus_dir": str(options.corpus_dir),
        "corpus_espeak_version": corpus.settings.espeak_version,
        "sentences_per_voice": options.sentences,
        "first_sentence": options.first_sentence,
        "stop_threshold": model.card.model.stop_threshold,
        "stop_threshold_overridden": options.voice.stop_threshold is not None,
        "sentence_ids": sorted({item.sentence_id for item in items}),
        "voices": list(train),
        "dropout": options.dropout,
        "seed": options.seed,
        "compare_random": options.compare_random,
        "random_seed": options.random_seed,
        "num_cepstra": options.num_cepstra,
        "style_stats_utterances": options.style_stats_utterances,
        "reference_sentences": options.reference_sentences,
        "vocoder": dataclasses.asdict(options.voice.synthesis.vocoder),
        "backend": options.voice.backend,
        "device": options.voice.device,
        "sample_rate": audio.sample_rate,
    }
    report = EvalReport(
        settings=settings,
        thresholds=options.thresholds,
        alignment_rule=options.alignment_rule,
        style_space=space,
        mcd_anchors=references.mcd_anchors,
        style_ceiling=references.style_ceiling,
        style_ceiling_absolute=references.style_ceiling_absolute,
        content_ceiling=references.content_ceiling,
        voiced_fraction_anchors=references.voiced_fraction_anchors,
        trained=trained,
        random=random,
        checks=run_checks(trained, random, references.mcd_anchors["all"]["vocoder_floor"], options.thresholds),
        quality_gate=quality_gate,
        plots=plots,
        plots_skipped=plots_skipped,
        wall_seconds=time.perf_counter() - started,
    )
    report.report_path = out / REPORT_NAME
    with atomic_write(report.report_path) as handle:
        json.dump(report.to_json(), handle, indent=2)
        handle.write("\n")
    return report
