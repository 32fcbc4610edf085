"""Audio in and out: decode anything to float32 mono, loudness-normalize, lay out dialogue, write WAV."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import soundfile as sf

from .. import dsp
from ..errors import InputError


_MAX_PREALLOC_S = 3600.0  # cap on a duration read from the header, which may lie


def _expected_seconds(container: av.container.InputContainer, stream: av.audio.stream.AudioStream) -> float:
    """The stream's duration from the header (0 when unknown): only a first guess at the array size."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0


def _decoded(container: av.container.InputContainer, stream: av.audio.stream.AudioStream, sr: int) -> Iterator[np.ndarray]:
    """The stream decoded and resampled to float32 mono at ``sr``, one frame's samples at a time."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sr)
    for frame in container.decode(stream):
        frame.pts = None  # let the resampler run on sample counts, not on (possibly broken) timestamps
        for out in resampler.resample(frame):
            yield out.to_ndarray().reshape(-1)
    for out in resampler.resample(None):
        yield out.to_ndarray().reshape(-1)


def load_audio(path: Path, field: str, sr: int) -> np.ndarray:
    """Decode the first audio stream of any audio or video file to float32 mono at ``sr`` Hz.

    Frames go straight into one array sized from the header's duration (grown in place when the
    header is short), so the peak is the result plus a frame, not twice the result.
    """
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise InputError(field, "cannot read this file as audio") from exc
    with container:
        if not container.streams.audio:
            raise InputError(field, "has no audio track")
        stream = container.streams.audio[0]
        stream.thread_type = "AUTO"
        # np.empty costs no memory until written, and resize() is realloc, which moves a big array
        # by remapping its pages: neither a generous guess nor growing doubles the peak.
        x = np.empty(int(min(max(_expected_seconds(container, stream), 0.0), _MAX_PREALLOC_S) * sr) + sr, np.float32)
        n, top = 0, 0.0
        try:
            for chunk in _decoded(container, stream, sr):
                if n + chunk.size > x.size:
                    x.resize(max(n + chunk.size, x.size + x.size // 2), refcheck=False)
                end = n + chunk.size
                x[n:end] = chunk  # (no view of x outlives a resize)
                np.nan_to_num(x[n:end], copy=False)
                top = max(top, float(np.abs(x[n:end]).max(initial=0.0)))
                n = end
        except av.FFmpegError as exc:
            if n == 0:
                raise InputError(field, "cannot decode the audio") from exc
            # A damaged tail: keep what decoded cleanly.
    if n == 0:
        raise InputError(field, "audio is empty (zero length)")
    x.resize(n, refcheck=False)
    if top > 1.0:  # surround downmixes can sum past full scale; keep the float range sane
        x /= top
    return x


def _k_weighting(sr: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """ITU-R BS.1770 pre-filter (high shelf + high pass) for any sample rate, as libebur128 derives it."""
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = np.tan(np.pi * f0 / sr)
    vh = 10.0 ** (gain_db / 20.0)
    vb = vh**0.4996667741545416
    a0 = 1.0 + k / q + k * k
    shelf_b = np.array([(vh + vb * k / q + k * k) / a0, 2.0 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0])
    shelf_a = np.array([1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0])
    f0, q = 38.13547087602444, 0.5003270373238773
    k = np.tan(np.pi * f0 / sr)
    a0 = 1.0 + k / q + k * k
    hp_b = np.array([1.0, -2.0, 1.0])
    hp_a = np.array([1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0])
    return [(shelf_b, shelf_a), (hp_b, hp_a)]


def integrated_loudness(x: np.ndarray, sr: int) -> float:
    """Integrated loudness (LUFS) of a mono signal per ITU-R BS.1770-4; -inf for silence.

    The K-weighted signal is streamed block by block into the running energy at the 400 ms
    gating blocks' edges, so memory does not grow with the length of ``x``.
    """
    x = np.asarray(x).reshape(-1)
    n = x.size
    block, step = int(round(0.4 * sr)), int(round(0.1 * sr))
    if n == 0:
        return float("-inf")
    if n < block:
        starts, length = np.zeros(1, np.int64), n
    else:
        starts, length = np.arange(0, n - block + 1, step), block
    weighted = dsp.lfilter_cascade_blocks(dsp.blocks(x), n, _k_weighting(sr))
    csum = dsp.cumsum_squares_at(weighted, np.concatenate([starts, starts + length]))
    z = (csum[starts.size :] - csum[: starts.size]) / length
    with np.errstate(divide="ignore"):
        lufs = -0.691 + 10.0 * np.log10(z)
    z = z[lufs > -70.0]  # absolute gate
    if z.size == 0:
        return float("-inf")
    relative = -0.691 + 10.0 * np.log10(z.mean()) - 10.0
    z = z[-0.691 + 10.0 * np.log10(z) > relative]
    return float(-0.691 + 10.0 * np.log10(z.mean()))


def limit_peaks(x: np.ndarray, sr: int, peak: float = 0.95) -> np.ndarray:
    """Smooth look-ahead limiter: |out| <= peak, gain changes over ~10 ms instead of hard clipping."""
    mag = np.abs(x)
    if mag.size == 0 or mag.max() <= peak:
        return x
    gain = np.minimum(1.0, peak / np.maximum(mag, 1e-12))
    w = max(1, int(0.01 * sr))
    # A minimum over 2w+1 samples then a mean over w: the mean only sees values <= each sample's own gain.
    gain = dsp.uniform_filter1d(dsp.minimum_filter1d(gain, 2 * w + 1), w)
    return np.clip(x * gain, -peak, peak).astype(np.float32)


def loudness_normalize(x: np.ndarray, sr: int, target_lufs: float = -16.0, peak: float = 0.95) -> np.ndarray:
    """Gain ``x`` to ``target_lufs`` integrated loudness, then limit peaks to ``peak``; silence stays silence."""
    x = np.asarray(x, dtype=np.float32)
    # Limiting peaks lowers the loudness a little; a second or third pass makes that up.
    for _ in range(3):
        loudness = integrated_loudness(x, sr)
        if not np.isfinite(loudness) or abs(loudness - target_lufs) < 0.1:
            break
        x = limit_peaks(x * np.float32(10.0 ** ((target_lufs - loudness) / 20.0)), sr, peak)
    return limit_peaks(x, sr, peak).astype(np.float32, copy=False)


def arrange_dialogue(left: np.ndarray, right: np.ndarray, order: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Place two speakers on one timeline; returns (mix, left_on_timeline, right_on_timeline), equal lengths.

    ``meanwhile``: both start at 0; ``left_right`` / ``right_left``: one after the other.
    Each speaker's track is zero wherever that speaker is not placed, so it can drive only its own mouth.
    """
    left = np.asarray(left, dtype=np.float32).reshape(-1)
    right = np.asarray(right, dtype=np.float32).reshape(-1)
    if order == "meanwhile":
        n = max(left.size, right.size)
        left_at, right_at = 0, 0
    elif order == "left_right":
        n = left.size + right.size
        left_at, right_at = 0, left.size
    elif order == "right_left":
        n = left.size + right.size
        left_at, right_at = right.size, 0
    else:
        raise InputError("order", f"{order!r} is not allowed; expected 'meanwhile', 'left_right' or 'right_left'")
    left_tl = np.zeros(n, np.float32)
    right_tl = np.zeros(n, np.float32)
    left_tl[left_at : left_at + left.size] = left
    right_tl[right_at : right_at + right.size] = right
    mix = left_tl + right_tl
    top = float(np.abs(mix).max()) if n else 0.0
    if top > 1.0:  # only overlapping speech can push the sum past full scale
        mix *= np.float32(0.99 / top)
    return mix, left_tl, right_tl


def write_wav(path: Path, x: np.ndarray, sr: int) -> None:
    """Write float mono samples as 16-bit PCM WAV (clipped to [-1, 1])."""
    x = np.clip(np.asarray(x, dtype=np.float32).reshape(-1), -1.0, 1.0)
    sf.write(str(path), x, sr, subtype="PCM_16", format="WAV")
