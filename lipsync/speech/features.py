"""Acoustic features per video frame: loudness envelope, voice activity and a lip-spread proxy.

Everything here is plain vectorised numpy (filters in ``lipsync.dsp``) and language independent.
Audio of any sample rate is first resampled to a fixed internal rate, so results do not depend
on the input rate.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .. import dsp

ENVELOPE_RATE = 16000  # 100-4000 Hz band needs 8 kHz Nyquist plus headroom
ANALYSIS_RATE = 8000  # VAD / spectral features only look below 4 kHz
HOP_S = 0.010  # analysis hop (the same 10 ms grid pocketsphinx uses)
_WIN = 256  # 32 ms analysis window at 8 kHz
_NFFT = 512
_FLOOR_DB = -120.0  # digital silence clamps here instead of -inf
_CHUNK_HOPS = 500  # hops framed at once: ~6 MB of spectra, the same for a 10 s clip as for an hour


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Float32 mono in -1..1 from (n,), (n, channels) or (channels, n); integer PCM is rescaled.

    Clean 1-D float32 input comes back as is (no copy): callers only read it.
    """
    a = np.asarray(audio)
    if a.ndim == 2:
        # Treat the short axis as channels ((2, n) and (n, 2) both occur in the wild).
        a = a.mean(axis=0 if a.shape[0] < a.shape[1] else 1)
    elif a.ndim != 1:
        raise ValueError(f"audio must be 1-D or 2-D, got shape {a.shape}")
    if np.issubdtype(a.dtype, np.integer):
        return (a / float(np.iinfo(a.dtype).max)).astype(np.float32)
    a = a.astype(np.float32, copy=False)
    # A float64 sum (buffered, no full-length temporary) is finite exactly when every sample is.
    if np.isfinite(np.sum(a, dtype=np.float64)):
        return a
    return np.nan_to_num(a)


def resample(audio: np.ndarray, sr: int, rate: int) -> np.ndarray:
    """Mono float32 at ``rate`` (soxr, so cheap even for 44.1 kHz -> 16 kHz)."""
    x = to_mono(audio)
    if sr <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    if sr == rate or x.size == 0:
        return x
    return dsp.resample(x, int(sr), int(rate))


def _band(x: np.ndarray, sr: int, rate: int, lo: float, hi: float) -> tuple[Iterator[np.ndarray], int]:
    """``x`` resampled to ``rate`` and band-passed, as a stream of float64 blocks, and its length.

    Zero-phase so the envelope is not delayed relative to the picture. Streamed so that neither
    the resampled nor the filtered signal is ever held whole (a 5-minute clip is 18 MB at 16 kHz).
    """
    n = x.size if sr == rate else -(-x.size * rate // sr)
    stream = dsp.resample_blocks(x, sr, rate)
    if n < 64:  # too short to filter meaningfully
        return stream, n
    return dsp.bandpass_blocks(stream, n, rate, lo, min(hi, 0.45 * rate), order=4), n


def _frame_edges(n_frames: int, fps: float, rate: int, n: int) -> np.ndarray:
    """Sample index where each video frame [i/fps, (i+1)/fps) starts, and where the last one ends."""
    return np.minimum(np.floor(np.arange(n_frames + 1) * (rate / fps)).astype(np.int64), n)


def speech_envelope(audio: np.ndarray, sr: int, n_frames: int, fps: int = 25) -> np.ndarray:
    """Loudness per video frame in 0..1 (frame i covers [i/fps, (i+1)/fps)).

    RMS in dB of the 100-4000 Hz band, mapped linearly from a noise floor (0) to the 98th
    percentile (1) and clipped. The floor is the 10th percentile + 3 dB, but never more than
    40 dB below the top, so digitally silent pauses do not squash the speech range.
    Frames past the end of the audio are 0.
    """
    x = to_mono(audio)
    if sr <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    band, n = _band(x, int(sr), ENVELOPE_RATE, 100.0, 4000.0)
    edges = _frame_edges(n_frames, fps, ENVELOPE_RATE, n)
    csum = dsp.cumsum_squares_at(band, edges)
    count = np.diff(edges)
    mean_sq = (csum[1:] - csum[:-1]) / np.maximum(count, 1)
    db = np.maximum(10.0 * np.log10(mean_sq + 1e-12), _FLOOR_DB)
    valid = count > 0
    env = np.zeros(n_frames, dtype=np.float32)
    if not valid.any():
        return env
    top = float(np.percentile(db[valid], 98))
    floor = max(float(np.percentile(db[valid], 10)) + 3.0, top - 40.0)
    if top - floor < 1.0:  # flat signal (silence, a steady tone): nothing to follow
        return env
    env[valid] = np.clip((db[valid] - floor) / (top - floor), 0.0, 1.0)
    return env


@dataclass
class FrameFeatures:
    """Acoustic features on a 10 ms grid (hop k is centred at k * 10 ms)."""

    energy_db: np.ndarray  # 100-3800 Hz band energy, dB re full scale
    periodicity: np.ndarray  # max normalised autocorrelation for 60-400 Hz pitch, ~0 noise .. 1 voiced
    flatness_db: np.ndarray  # spectral flatness of the band, 0 dB = white noise
    tilt_db: np.ndarray  # energy 1.5-3.5 kHz over 250-1000 Hz: a crude F2 (lip spread) proxy
    lip_band_db: np.ndarray  # energy 1-3.8 kHz: drops sharply while the lips are closed

    def __len__(self) -> int:
        return int(self.energy_db.size)


def _spectral_features(frames: np.ndarray, window: np.ndarray, lags: np.ndarray, lag_norm: np.ndarray) -> np.ndarray:
    """The five ``FrameFeatures`` rows (energy, periodicity, flatness, tilt, lip band) for a chunk
    of ``_WIN``-sample frames. A function of its own so each chunk's spectra are freed on return."""
    freqs = np.fft.rfftfreq(_NFFT, 1.0 / ANALYSIS_RATE)
    band = (freqs >= 100) & (freqs <= 3800)
    lo_band = (freqs >= 250) & (freqs < 1000)
    hi_band = (freqs >= 1500) & (freqs <= 3500)
    lip_band = (freqs >= 1000) & (freqs <= 3800)
    fr = frames - frames.mean(axis=1, keepdims=True)
    fr *= window
    power = np.abs(np.fft.rfft(fr, _NFFT, axis=1))
    del fr
    power **= 2
    power += 1e-12
    out = np.empty((5, power.shape[0]), dtype=np.float32)
    in_band = power[:, band]
    out[0] = np.maximum(10 * np.log10(in_band.sum(axis=1) / (_WIN * window.sum())), _FLOOR_DB)
    out[2] = 10 / np.log(10) * (np.log(in_band).mean(axis=1) - np.log(in_band.mean(axis=1)))
    del in_band
    out[3] = 10 * np.log10(power[:, hi_band].sum(axis=1) / power[:, lo_band].sum(axis=1))
    out[4] = np.maximum(10 * np.log10(power[:, lip_band].sum(axis=1) / (_WIN * window.sum())), _FLOOR_DB)
    ac = np.fft.irfft(power, _NFFT, axis=1)
    del power
    out[1] = np.clip((ac[:, lags] * lag_norm).max(axis=1) / np.maximum(ac[:, 0], 1e-12), 0, 1)
    return out


def frame_features(audio: np.ndarray, sr: int) -> FrameFeatures:
    """Short-time features of the 8 kHz, 100-3800 Hz band, computed in chunks to bound memory.

    The band signal is streamed (see ``_band``) and framed ``_CHUNK_HOPS`` hops at a time, so
    memory stays at one chunk's spectra whatever the length.
    """
    x = to_mono(audio)
    if sr <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    band, n = _band(x, int(sr), ANALYSIS_RATE, 100.0, 3800.0)
    hop = int(ANALYSIS_RATE * HOP_S)
    n_hops = -(-n // hop)
    window = np.hanning(_WIN).astype(np.float32)
    # Autocorrelation of the window itself, to undo the taper's bias towards short lags.
    win_ac = np.fft.irfft(np.abs(np.fft.rfft(window, _NFFT)) ** 2)[:_WIN]
    lags = np.arange(ANALYSIS_RATE // 400, ANALYSIS_RATE // 60 + 1)
    lag_norm = (win_ac[0] / win_ac[lags]).astype(np.float32)

    out = np.empty((5, n_hops), dtype=np.float32)
    chunk = _CHUNK_HOPS
    # Hop k's window is centred on sample k * hop: the stream gets _WIN // 2 zeros in front, and
    # a chunk of hops [s, s + chunk) reads that padded stream's [s * hop, (s + chunk - 1) * hop + _WIN).
    windows = dsp.slabs(band, (chunk - 1) * hop + _WIN, chunk * hop, -(-n_hops // chunk), head=_WIN // 2, dtype=np.float32)
    for s, slab in zip(range(0, n_hops, chunk), windows):
        frames = np.lib.stride_tricks.sliding_window_view(slab, _WIN)[::hop][: min(chunk, n_hops - s)]
        out[:, s : s + frames.shape[0]] = _spectral_features(frames, window, lags, lag_norm)
    return FrameFeatures(*out)


def _runs(mask: np.ndarray) -> np.ndarray:
    """(start, end) index pairs of the True runs in a 1-D bool array."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.stack([np.flatnonzero(d == 1), np.flatnonzero(d == -1)], axis=1)


def hop_voice_activity(feats: FrameFeatures) -> np.ndarray:
    """Speech / non-speech per 10 ms hop.

    A hop is *active* when its energy is 10 dB above an adaptive noise floor (10th percentile
    over a sliding 5 s window), and *voiced* when it is also periodic or spectrally peaky.
    Active runs are bridged across gaps < 120 ms, runs without 40 ms of voicing are dropped
    (clicks, hiss, noise bursts), then runs get 30 ms lead-in and 60 ms hangover.
    """
    e = feats.energy_db
    if e.size == 0:
        return np.zeros(0, dtype=bool)
    win = min(e.size, int(5.0 / HOP_S)) | 1
    noise = dsp.percentile_filter1d(e, 10, win)
    peak = float(np.percentile(e, 99))
    threshold = np.maximum(noise + 10.0, max(peak - 50.0, -75.0))
    active = e > threshold
    voiced = active & ((feats.periodicity > 0.55) | (feats.flatness_db < -14.0))

    gap = int(round(0.12 / HOP_S))
    for start, end in _runs(~active):
        if 0 < start and end < active.size and end - start < gap:
            active[start:end] = True
    min_voiced = int(round(0.04 / HOP_S))
    speech = np.zeros_like(active)
    lead, hang = int(round(0.03 / HOP_S)), int(round(0.06 / HOP_S))
    for start, end in _runs(active):
        if voiced[start:end].sum() >= min_voiced:
            speech[max(start - lead, 0) : end + hang] = True
    return speech


def hops_to_frames(values: np.ndarray, n_frames: int, fps: int) -> np.ndarray:
    """Average a 10 ms-grid series over each video frame: frame i takes the hops whose centres
    (k * 10 ms) fall in [i/fps, (i+1)/fps); frames holding no hop centre take the nearest hop."""
    out = np.zeros(n_frames, dtype=np.float64)
    if values.size == 0 or n_frames == 0:
        return out
    edges = np.ceil(np.arange(n_frames + 1) / (fps * HOP_S) - 1e-9).astype(np.int64)
    edges = np.minimum(edges, values.size)
    csum = np.concatenate([[0.0], np.cumsum(values, dtype=np.float64)])
    count = np.diff(edges)
    out = (csum[edges[1:]] - csum[edges[:-1]]) / np.maximum(count, 1)
    empty = count == 0
    if empty.any():
        centres = np.round((np.flatnonzero(empty) + 0.5) / (fps * HOP_S)).astype(np.int64)
        out[empty] = values[np.clip(centres, 0, values.size - 1)]
    return out


def speech_frames(hops: np.ndarray, n_frames: int, fps: int, duration_s: float) -> np.ndarray:
    """Per-hop speech flags -> per video frame: speech when at least half its hops are."""
    speech = hops_to_frames(hops.astype(np.float64), n_frames, fps) >= 0.5
    speech[int(np.ceil(duration_s * fps)) :] = False  # past the end of the audio
    return speech


def voice_activity(audio: np.ndarray, sr: int, n_frames: int, fps: int = 25) -> np.ndarray:
    """Speech (True) / silence per video frame; frames past the end of the audio are False.

    See ``hop_voice_activity`` for the detector; a frame is speech when half its hops are.
    """
    x = to_mono(audio)
    return speech_frames(hop_voice_activity(frame_features(x, sr)), n_frames, fps, x.size / sr)
