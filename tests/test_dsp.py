"""lipsync.dsp against the scipy calls it replaces (scipy stays installed as the test reference)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from scipy import ndimage, signal

from conftest import make_speech, traced_peak
from lipsync import dsp
from lipsync.media.audio import _k_weighting, integrated_loudness, loudness_normalize


@pytest.fixture(scope="module")
def speech(media_dir) -> tuple[np.ndarray, int]:
    audio, sr = sf.read(str(make_speech(media_dir / "dsp.wav", "Bob bought a map. Mom made pasta, maybe.")), dtype="float32")
    return audio, sr


def test_job_imports_do_not_load_scipy():
    code = "import sys, lipsync.speech, lipsync.media.audio; print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_next_fast_len():
    for n in [0, 1, 2, 7, 11, 97, 1025, 65537, 123457]:
        m = dsp.next_fast_len(n)
        assert m >= n and m < 2 * max(n, 1)
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        assert m == 1, n
    assert dsp.next_fast_len(1025) == 1080


@pytest.mark.parametrize(("sr", "rate"), [(22050, 16000), (48000, 16000), (16000, 8000), (8000, 44100)])
def test_resample_matches_polyphase(speech, sr, rate):
    x = dsp.resample(speech[0], speech[1], sr)  # speech at the source rate
    y = dsp.resample(x, sr, rate)
    ref = signal.resample_poly(x, rate, sr).astype(np.float32)
    assert y.dtype == np.float32 and y.shape == ref.shape
    # Same signal; the two anti-aliasing filters differ only near the new Nyquist.
    assert np.corrcoef(y, ref)[0, 1] > 0.995
    assert np.sqrt(np.mean((y - ref) ** 2)) < 0.05 * np.sqrt(np.mean(ref**2))


def test_resample_removes_what_the_new_rate_cannot_hold():
    t = np.arange(48000) / 48000
    tone = (0.5 * np.sin(2 * np.pi * 10000 * t)).astype(np.float32)  # above 8 kHz Nyquist of 16 kHz
    kept = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    assert np.abs(dsp.resample(tone, 48000, 16000)[1000:-1000]).max() < 1e-3
    y = dsp.resample(kept, 48000, 16000)
    assert np.abs(y[1000:-1000] - kept[::3][1000:-1000]).max() < 1e-3
    assert dsp.resample(kept[:10], 48000, 16000).size == 4  # ceil, like resample_poly


@pytest.mark.parametrize(("rate", "lo", "hi"), [(16000, 100.0, 4000.0), (8000, 100.0, 3600.0), (48000, 300.0, 3000.0)])
def test_bandpass_matches_sosfiltfilt(speech, rate, lo, hi):
    x = dsp.resample(speech[0], speech[1], rate).astype(np.float64)
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(2 * rate)
    sos = signal.butter(4, [lo, hi], btype="bandpass", fs=rate, output="sos")
    edge = int(0.05 * rate)
    for sig in (x, noise):
        ref = signal.sosfiltfilt(sos, sig)
        y = dsp.bandpass_zero_phase(sig, rate, lo, hi)
        assert y.shape == sig.shape
        # Away from the ends (where scipy's short odd extension leaves a transient) they agree exactly.
        assert np.abs(y - ref)[edge:-edge].max() < 1e-5 * np.abs(ref).max()
        # At the ends they differ (both extend the signal, differently), but nothing rings.
        assert np.abs(y).max() < 1.2 * np.abs(ref).max()


def test_bandpass_short_and_tiny_inputs():
    x = np.random.default_rng(1).standard_normal(100)
    assert dsp.bandpass_zero_phase(x, 8000, 100, 3800).shape == (100,)
    assert dsp.bandpass_zero_phase(x[:1], 8000, 100, 3800).tolist() == x[:1].tolist()


@pytest.mark.parametrize("sr", [8000, 16000, 44100, 48000])
def test_lfilter_cascade_matches_lfilter(speech, sr):
    x = dsp.resample(speech[0], speech[1], sr).astype(np.float64)
    ref = x
    for b, a in _k_weighting(sr):
        ref = signal.lfilter(b, a, ref)
    y = dsp.lfilter_cascade(x, _k_weighting(sr))
    assert y.shape == x.shape
    assert np.abs(y - ref).max() < 1e-9
    assert dsp.lfilter_cascade(np.zeros(0), _k_weighting(sr)).size == 0


def test_lfilter_cascade_rejects_unstable_sections():
    with pytest.raises(ValueError, match="not stable"):
        dsp.lfilter_cascade(np.ones(10), [(np.array([1.0]), np.array([1.0, -1.01]))])


# Computed with the scipy.signal.lfilter implementation before it was replaced.
LOUDNESS_BEFORE = {"noise48k": -16.8496, "sine1k_44k": -9.0215, "sine60_16k": -12.538, "gated_22k": -7.989, "sine10k_48k": -13.6388}


def _loudness_signals():
    rng = np.random.default_rng(0)
    yield "noise48k", rng.standard_normal(3 * 48000) * 0.1, 48000
    t = np.arange(2 * 44100) / 44100
    yield "sine1k_44k", 0.5 * np.sin(2 * np.pi * 1000 * t), 44100
    t = np.arange(2 * 16000) / 16000
    yield "sine60_16k", 0.5 * np.sin(2 * np.pi * 60 * t), 16000
    rng = np.random.default_rng(1)
    x = rng.standard_normal(4 * 22050) * 0.3
    x[22050 : 2 * 22050] *= 0.001  # a near-silent second: the relative gate drops it
    yield "gated_22k", x, 22050
    t = np.arange(48000) / 48000
    yield "sine10k_48k", 0.2 * np.sin(2 * np.pi * 10000 * t), 48000


def test_integrated_loudness_unchanged_from_scipy_version():
    for name, x, sr in _loudness_signals():
        assert integrated_loudness(x, sr) == pytest.approx(LOUDNESS_BEFORE[name], abs=0.01), name


def test_loudness_normalize_unchanged_from_scipy_version():
    rng = np.random.default_rng(2)
    x = (rng.standard_normal(2 * 48000) * 0.05).astype(np.float32)
    x[::4000] = 0.9  # sparse clicks: a -6 LUFS target needs the limiter
    # (target, loudness after, RMS after) from the scipy.ndimage / scipy.signal implementation.
    for target, loudness, rms in [(-16.0, -16.0122, 0.110621), (-6.0, -9.389, 0.23723)]:
        y = loudness_normalize(x, 48000, target_lufs=target, peak=0.9)
        assert integrated_loudness(y, 48000) == pytest.approx(loudness, abs=0.01)
        assert float(np.sqrt(np.mean(y.astype(np.float64) ** 2))) == pytest.approx(rms, rel=1e-3)
        assert np.abs(y).max() <= 0.9


@pytest.mark.parametrize("sigma", [0.25, 0.5, 0.8, 1.5, 4.0, 30.0])
def test_gaussian_filter1d_matches_ndimage(sigma):
    x = np.random.default_rng(3).standard_normal(50)
    np.testing.assert_allclose(dsp.gaussian_filter1d(x, sigma), ndimage.gaussian_filter1d(x, sigma, mode="nearest"), atol=1e-12)
    for mode in ("reflect", "mirror", "wrap"):  # sigma 30 pads past the whole signal
        np.testing.assert_allclose(dsp.gaussian_filter1d(x, sigma, mode=mode), ndimage.gaussian_filter1d(x, sigma, mode=mode), atol=1e-12)
    steps = (np.arange(40) > 20).astype(np.float64)
    np.testing.assert_allclose(dsp.gaussian_filter1d(steps, sigma, truncate=2.0), ndimage.gaussian_filter1d(steps, sigma, mode="nearest", truncate=2.0), atol=1e-12)


@pytest.mark.parametrize("size", [1, 2, 3, 8, 101, 501])
@pytest.mark.parametrize("n", [1, 7, 600, 3000])
def test_rank_filters_match_ndimage(size, n):
    x = (np.random.default_rng(4).standard_normal(n) * 20 - 40).astype(np.float32)
    for pct in (10, 50, 90):
        np.testing.assert_array_equal(dsp.percentile_filter1d(x, pct, size), ndimage.percentile_filter(x, pct, size=size, mode="nearest"))
    np.testing.assert_array_equal(dsp.minimum_filter1d(x, size), ndimage.minimum_filter1d(x, size, mode="nearest"))
    got = dsp.uniform_filter1d(x, size)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ndimage.uniform_filter1d(x, size, mode="nearest"), atol=1e-5)


def test_gaussian_filter1d_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        dsp.gaussian_filter1d(np.ones(5), 1.0, mode="constant")


def test_minimum_filter1d_on_limiter_gain():
    # The limiter's gain: ones with dips around peaks; windows straddle block edges everywhere.
    x = np.ones(48000, np.float32)
    x[[0, 5000, 5001, 20000, 47999]] = [0.5, 0.3, 0.7, 0.2, 0.4]
    for size in (961, 960, 48001):
        np.testing.assert_array_equal(dsp.minimum_filter1d(x, size), ndimage.minimum_filter1d(x, size, mode="nearest"))


@pytest.mark.parametrize("taps", [1, 2, 50, 3000])
def test_fft_convolve_matches_convolve(taps):
    rng = np.random.default_rng(5)
    kernel = rng.standard_normal(taps)
    for n in (1, 100, 30000, 200000):
        x = rng.standard_normal(n)
        full = np.convolve(x, kernel)
        for delay in sorted({0, taps // 2, taps - 1}):
            y = dsp.fft_convolve(x, kernel, delay=delay, group=1 << 16)
            assert y.shape == (n,)
            np.testing.assert_allclose(y, full[delay : delay + n], atol=1e-9 * np.abs(full).max())
    with pytest.raises(ValueError):
        dsp.fft_convolve(np.ones(4), kernel, delay=taps)


# -- streaming: the *_blocks helpers give the whole-array results block by block ------------------


def _ragged(x: np.ndarray, seed: int = 0):
    """``x`` cut into blocks of random sizes (1 to 40,000 samples), as a stream."""
    rng = np.random.default_rng(seed)
    s = 0
    while s < x.size:
        step = int(rng.integers(1, 40000))
        yield x[s : s + step]
        s += step


@pytest.mark.parametrize(("sr", "rate"), [(22050, 16000), (16000, 8000), (44100, 8000), (16000, 16000)])
def test_resample_blocks_equal_one_shot(speech, sr, rate):
    x = dsp.resample(speech[0], speech[1], sr)
    for size in (1000, 1 << 16):
        got = dsp.collect(dsp.resample_blocks(x, sr, rate, size=size), -(-x.size * rate // sr), np.float32)
        np.testing.assert_array_equal(got, dsp.resample(x, sr, rate))


def test_filter_blocks_equal_whole_array_filters(speech):
    x = dsp.resample(speech[0], speech[1], 16000)
    ref = dsp.bandpass_zero_phase(x, 16000, 100, 4000)
    got = dsp.collect(dsp.bandpass_blocks(_ragged(x), x.size, 16000, 100, 4000, group=1 << 15), x.size)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    sections = _k_weighting(16000)
    ref = dsp.lfilter_cascade(x, sections)
    got = dsp.collect(dsp.lfilter_cascade_blocks(_ragged(x, 1), x.size, sections, group=1 << 15), x.size)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    # Short signals (shorter than the kernel's half-length) keep filtfilt's odd reflection.
    for n in (2, 3, 700):
        short = x[4000 : 4000 + n].astype(np.float64)
        got = dsp.collect(dsp.bandpass_blocks(_ragged(short, n), n, 16000, 100, 4000), n)
        padded = np.concatenate([2 * short[0] - short[n - 1 : 0 : -1], short, 2 * short[-1] - short[-2::-1]])
        kernel, half = dsp._bandpass_kernel(16000, 100, 4000, 4)
        np.testing.assert_allclose(got, np.convolve(padded, kernel)[half + n - 1 : half + 2 * n - 1], atol=1e-12)


def test_slabs_are_windows_of_the_padded_stream():
    x = np.arange(1, 1001, dtype=np.float64)
    padded = np.concatenate([np.zeros(7), x, np.zeros(500)])
    windows = list(dsp.slabs(_ragged(x, 2), length=120, advance=100, count=11, head=7))
    assert len(windows) == 11
    for j, w in enumerate(windows):
        np.testing.assert_array_equal(w, padded[j * 100 : j * 100 + 120])


def test_cumsum_squares_at_matches_cumsum():
    y = np.random.default_rng(6).standard_normal(50000)
    full = np.concatenate([[0.0], np.cumsum(y * y)])
    positions = np.array([50000, 0, 17, 40000, 17, 1, 49999, 60000, -3])  # any order, repeats, out of range
    got = dsp.cumsum_squares_at(_ragged(y, 3), positions)
    np.testing.assert_allclose(got, full[np.clip(positions, 0, y.size)], rtol=1e-12, atol=0)




def test_streaming_filters_memory_does_not_grow_with_length():
    """Loudness and the band energy of 2 minutes peak about as high as of 10 s: nothing full-length is held."""
    rng = np.random.default_rng(7)
    short, long = ((rng.standard_normal(s * 16000) * 0.1).astype(np.float32) for s in (10, 120))
    growth = long.nbytes - short.nbytes  # 7 MB; the whole-array versions grew by 4-6x that
    for run in (lambda x: integrated_loudness(x, 16000),
                lambda x: dsp.cumsum_squares_at(dsp.bandpass_blocks(dsp.blocks(x), x.size, 16000, 100, 4000), [0, x.size])):
        assert traced_peak(lambda: run(long)) - traced_peak(lambda: run(short)) < 0.1 * growth
