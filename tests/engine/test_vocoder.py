"""Griffin-Lim vocoder: parity with librosa.griffinlim, batch invariance, key determinism, clip rule."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile

from tests.conftest import cupy_with_gpu
from trtgen.engine.config import AudioConfig
from trtgen.engine.randomness import draws16
from trtgen.engine.vocoder import (
    GRIFFIN_LIM_PRESETS,
    GriffinLimOptions,
    griffin_lim,
    griffin_lim_preset,
    spectral_convergence,
    vocoder_array_module,
)

CFG = AudioConfig()
CLIPS = [
    "M-AILABS/en_US/by_book/female/judy_bieber/dorothy_and_wizard_oz/wavs/dorothy_and_wizard_oz_01_f000060.wav",
    "LibriSpeech/test-clean/1089/134691/1089-134691-0000.flac",
    "M-AILABS/en_US/by_book/female/judy_bieber/dorothy_and_wizard_oz/wavs/dorothy_and_wizard_oz_01_f000001.wav",
]


def librosa_magnitude(y: np.ndarray, cfg: AudioConfig = CFG) -> np.ndarray:
    """|STFT| [T, F] of real speech, computed by librosa (the stand-in for a model's mag output)."""
    spec = librosa.stft(y, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length, pad_mode="reflect")
    return np.abs(spec).T.astype(np.float32)


@pytest.fixture(scope="module")
def speech_magnitudes(shared_data: Path) -> list[np.ndarray]:
    """Real speech magnitudes of three different lengths (about 140, 167 and 166 frames)."""
    mags = []
    for name in CLIPS:
        y, rate = soundfile.read(str(shared_data / name), dtype="float32")
        assert rate == CFG.sample_rate
        mags.append(librosa_magnitude(y[: 26000 + 2000 * len(mags)]))
    assert len({m.shape[0] for m in mags}) == 3
    return mags


def librosa_gl(S: np.ndarray, n_iter: int, momentum: float, cfg: AudioConfig = CFG) -> np.ndarray:
    return librosa.griffinlim(
        S.T,
        n_iter=n_iter,
        hop_length=cfg.hop_length,
        win_length=cfg.win_length,
        n_fft=cfg.n_fft,
        momentum=momentum,
        init=None,
        pad_mode="reflect",
    )


def relative_error(ours: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(ours - ref).max() / np.abs(ref).max())


@pytest.mark.parametrize("n_iter,momentum", [(0, 0.0), (1, 0.0), (4, 0.0), (4, 0.99)])
def test_matches_librosa_griffinlim_with_zero_phase(speech_magnitudes: list[np.ndarray], n_iter: int, momentum: float) -> None:
    mag = speech_magnitudes[1]
    ours = griffin_lim([mag], None, GriffinLimOptions(n_iter=n_iter, momentum=momentum, init="zeros"))[0]
    ref = librosa_gl(mag.astype(np.float64) ** 1.5, n_iter, momentum)
    assert ours.dtype == np.float32
    assert ours.shape == ref.shape == (CFG.hop_length * (mag.shape[0] - 1),)
    assert relative_error(ours, ref) < 2e-5


def test_hop_that_does_not_divide_n_fft_matches_librosa(speech_magnitudes: list[np.ndarray], shared_data: Path) -> None:
    cfg = AudioConfig(hop_length=300)
    y, _ = soundfile.read(str(shared_data / CLIPS[0]), dtype="float32")
    mag = librosa_magnitude(y, cfg)
    ours = griffin_lim([mag], None, GriffinLimOptions(n_iter=3, momentum=0.0, init="zeros"), cfg)[0]
    assert relative_error(ours, librosa_gl(mag.astype(np.float64) ** 1.5, 3, 0.0, cfg)) < 2e-5


def test_random_initial_phase_is_the_keyed_draw(speech_magnitudes: list[np.ndarray]) -> None:
    """With 0 iterations the output is istft(S * exp(2πi k / 65536)), k = draws16(key, frame)[bin]."""
    mag, key = speech_magnitudes[0], 0x1234_5678_9ABC_DEF0
    ours = griffin_lim([mag], [key], GriffinLimOptions(n_iter=0))[0]
    frames, bins = mag.shape
    draws = draws16(np.uint64(key), np.arange(frames), bins)
    assert draws.shape == (frames, bins) and draws.dtype == np.uint16
    phase = np.exp(2j * np.pi * draws.astype(np.float64) / 65536)
    ref = librosa.istft(((mag.astype(np.float64) ** 1.5) * phase).T, hop_length=CFG.hop_length, n_fft=CFG.n_fft)
    assert relative_error(ours, ref) < 1e-5


def test_draws16_are_uniform_and_keyed() -> None:
    """Four 16-bit words per hash: every value about equally likely, other keys give other draws."""
    draws = draws16(np.uint64(7), np.arange(2000), 401)
    counts = np.bincount((draws >> 12).ravel(), minlength=16)  # 16 bins of 4096 values
    expected = draws.size / 16
    assert np.abs(counts - expected).max() < 5 * np.sqrt(expected)
    assert (draws16(np.uint64(8), np.arange(2000), 401) != draws).mean() > 0.99


@pytest.mark.parametrize("momentum,chunk_frames", [(0.0, 256), (0.99, 256), (0.9, 48)])
def test_item_output_does_not_depend_on_its_batch(
    speech_magnitudes: list[np.ndarray], momentum: float, chunk_frames: int
) -> None:
    options = GriffinLimOptions(n_iter=6, momentum=momentum, chunk_frames=chunk_frames)
    keys = [101, 202, 303]
    alone = [griffin_lim([m], [k], options)[0] for m, k in zip(speech_magnitudes, keys)]
    together = griffin_lim(speech_magnitudes, keys, options)
    reversed_batch = griffin_lim(speech_magnitudes[::-1], keys[::-1], options)[::-1]
    for a, b, c, m in zip(alone, together, reversed_batch, speech_magnitudes):
        assert a.shape == (CFG.hop_length * (m.shape[0] - 1),)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_thread_count_does_not_change_output(speech_magnitudes: list[np.ndarray]) -> None:
    keys = [7, 8, 9]
    one = griffin_lim(speech_magnitudes, keys, GriffinLimOptions(n_iter=4, threads=1, chunk_frames=32))
    two = griffin_lim(speech_magnitudes, keys, GriffinLimOptions(n_iter=4, threads=2, chunk_frames=32))
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_same_key_same_audio_other_key_other_audio(speech_magnitudes: list[np.ndarray]) -> None:
    mag = speech_magnitudes[0]
    options = GriffinLimOptions(n_iter=3)
    first, again, other = griffin_lim([mag, mag, mag], [5, 5, 6], options)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, griffin_lim([mag], [5], options)[0])
    assert np.abs(first - other).max() > 0.1 * np.abs(first).max()


def test_out_of_range_magnitudes_are_clipped_to_0_255(speech_magnitudes: list[np.ndarray]) -> None:
    mag = speech_magnitudes[1].copy()
    mag[10:20, 5:50] = 250.0 + 1000.0 * mag[10:20, 5:50]
    mag[30:40, 100:120] *= -1.0
    clipped = np.clip(mag.astype(np.float64), 0.0, 255.0)
    assert (mag > 255).any() and (mag < 0).any()
    # No iterations: the (linear) zero-phase istft of clip(mag)**1.5, checked against librosa.
    ours = griffin_lim([mag], None, GriffinLimOptions(n_iter=0, init="zeros"))[0]
    ref = librosa.istft((clipped**1.5).T, hop_length=CFG.hop_length, n_fft=CFG.n_fft)
    assert relative_error(ours, ref) < 1e-5
    # With iterations the out-of-range input behaves exactly like its clipped copy.
    options = GriffinLimOptions(n_iter=3)
    np.testing.assert_array_equal(
        griffin_lim([mag], [4], options)[0], griffin_lim([clipped.astype(np.float32)], [4], options)[0]
    )


def test_momentum_lowers_spectral_convergence(speech_magnitudes: list[np.ndarray]) -> None:
    keys = [1, 2, 3]
    classic = griffin_lim(speech_magnitudes, keys, GriffinLimOptions(n_iter=8, momentum=0.0))
    fast = griffin_lim(speech_magnitudes, keys, GriffinLimOptions(n_iter=8, momentum=0.99))
    for mag, y_classic, y_fast in zip(speech_magnitudes, classic, fast):
        S = mag.astype(np.float64) ** 1.5

        def sc(y: np.ndarray) -> float:
            rebuilt = librosa_magnitude(y).astype(np.float64)
            return float(np.linalg.norm(S - rebuilt) / np.linalg.norm(S))

        assert sc(y_fast) < sc(y_classic) < 0.5
        assert spectral_convergence(S, y_fast) == pytest.approx(sc(y_fast), rel=1e-4)


def test_presets_and_default() -> None:
    assert griffin_lim_preset("openseq2seq") == GriffinLimOptions(n_iter=4, momentum=0.0)
    assert GRIFFIN_LIM_PRESETS["default"] == GriffinLimOptions()
    with pytest.raises(ValueError, match="openseq2seq"):
        griffin_lim_preset("nonexistent")


def test_rejects_bad_input(speech_magnitudes: list[np.ndarray]) -> None:
    mag = speech_magnitudes[0]
    assert griffin_lim([], []) == []
    with pytest.raises(ValueError, match="keys"):
        griffin_lim([mag], None, GriffinLimOptions(init="random"))
    with pytest.raises(ValueError, match="2 keys for 1"):
        griffin_lim([mag], [1, 2])
    with pytest.raises(ValueError, match="64-bit"):
        griffin_lim([mag], [-1])
    with pytest.raises(ValueError, match=r"magnitude 1 has shape \(10, 400\)"):
        griffin_lim([mag, mag[:10, :400]], [1, 2])
    with pytest.raises(ValueError, match="at least 2"):
        griffin_lim([mag[:1]], [1])
    bad = mag.copy()
    bad[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        griffin_lim([bad], [1])
    with pytest.raises(ValueError, match="n_iter"):
        GriffinLimOptions(n_iter=-1)
    with pytest.raises(ValueError, match="momentum"):
        GriffinLimOptions(momentum=-0.5)
    with pytest.raises(ValueError, match="init"):
        GriffinLimOptions(init="ones")


class _OtherArrayModule:
    """numpy seen through another module object: drives the CuPy code path (``xp is not numpy``)."""

    def __getattr__(self, name: str) -> object:
        return getattr(np, name)


def test_generic_array_module_path_matches_numpy_path(speech_magnitudes: list[np.ndarray]) -> None:
    keys = [21, 22, 23]
    options = GriffinLimOptions(n_iter=4, momentum=0.9)
    reference = griffin_lim(speech_magnitudes, keys, options)
    generic = griffin_lim(speech_magnitudes, keys, options, xp=_OtherArrayModule())
    for a, b in zip(reference, generic):
        assert b.dtype == np.float32 and b.shape == a.shape
        assert relative_error(b, a) < 1e-4


def test_vocoder_device_names_its_array_module() -> None:
    assert vocoder_array_module("cpu") is np
    with pytest.raises(ValueError, match="unknown vocoder device 'tpu'"):
        vocoder_array_module("tpu")
    if importlib.util.find_spec("cupy") is None:
        with pytest.raises(ValueError, match="needs CuPy"):
            vocoder_array_module("cuda")


@pytest.mark.gpu
def test_cupy_matches_numpy(speech_magnitudes: list[np.ndarray]) -> None:
    cupy = cupy_with_gpu()
    keys = [11, 12, 13]
    for options in (GriffinLimOptions(n_iter=4, momentum=0.0), GriffinLimOptions(n_iter=8, momentum=0.99)):
        on_cpu = griffin_lim(speech_magnitudes, keys, options)
        on_gpu = griffin_lim([cupy.asarray(m) for m in speech_magnitudes], keys, options, xp=cupy)
        for a, b in zip(on_cpu, on_gpu):
            assert isinstance(b, cupy.ndarray) and b.dtype == cupy.float32
            assert relative_error(cupy.asnumpy(b), a) < 1e-3


@pytest.mark.parametrize("length", [1, 2, 3, 150, 200, 399, 400, 401, 1000])
def test_reflect_index_is_where_numpy_reflect_padding_reads(length: int) -> None:
    from trtgen.engine.spectral import reflect_index

    pad = 400
    padded = np.pad(np.arange(length), pad, mode="reflect")
    positions = np.arange(-pad, length + pad)
    np.testing.assert_array_equal(reflect_index(positions, length), padded)
