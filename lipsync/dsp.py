"""Small signal-processing helpers on numpy and soxr, so a job never has to import scipy.

``import scipy.signal`` / ``scipy.ndimage`` cost well over a second of CLI start-up, and we
only need a handful of 1-D filters. Each helper here names the scipy call it stands in for and
matches it (same edge mode, same window alignment) to float precision, except ``resample``
(soxr instead of a Kaiser polyphase filter) and the edge transient of ``bandpass_zero_phase``.

The filters also come as ``*_blocks`` streams (blocks of samples in, float64 blocks out), so a
long signal can be resampled, filtered and reduced without ever holding a filtered copy of it:
memory stays at a few blocks however long the audio is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import soxr

if TYPE_CHECKING:
    from numpy.typing import DTypeLike

BLOCK = 1 << 15  # samples per block of the streaming filters: 256 kB of float64


def next_fast_len(n: int) -> int:
    """Smallest 2^a * 3^b * 5^c >= ``n``: an FFT size pocketfft handles quickly."""
    if n <= 1:
        return 1
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            # Smallest power of two that lifts p35 to n or more.
            p2 = 1 << max(0, (-(-n // p35) - 1).bit_length())
            best = min(best, p2 * p35)
            p35 *= 3
        p5 *= 5
    return best


def blocks(x: np.ndarray, size: int = BLOCK) -> Iterator[np.ndarray]:
    """Consecutive views ``x[s : s + size]`` of a 1-D array: the input of the ``*_blocks`` streams."""
    for s in range(0, x.size, size):
        yield x[s : s + size]


def collect(stream: Iterable[np.ndarray], n: int, dtype: DTypeLike = np.float64) -> np.ndarray:
    """The ``n`` samples of a block stream in one array of ``dtype``, allocated once."""
    out = np.empty(n, dtype=dtype)
    i = 0
    for block in stream:
        out[i : i + block.size] = block
        i += block.size
    return out


def resample(x: np.ndarray, sr: int, rate: int) -> np.ndarray:
    """1-D float32 ``x`` from ``sr`` to ``rate`` Hz with soxr (HQ, linear phase, no delay).

    The length is ``ceil(len(x) * rate / sr)`` like ``scipy.signal.resample_poly``.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    if sr == rate or x.size == 0:
        return x
    n = -(-x.size * int(rate) // int(sr))
    y = soxr.resample(x, int(sr), int(rate))
    # soxr rounds the length; a missing last sample lies past the input's end, so it is silence.
    return np.pad(y, (0, max(0, n - y.size)))[:n].astype(np.float32, copy=False)


def resample_blocks(x: np.ndarray, sr: int, rate: int, size: int = BLOCK) -> Iterator[np.ndarray]:
    """``resample(x, sr, rate)`` as a stream of float32 blocks (the same samples), read ``size`` at a time.

    soxr's stream gives exactly its one-shot output, so only a block of the result is ever held.
    """
    x = np.asarray(x).reshape(-1)
    if sr == rate:
        for block in blocks(x, size):
            yield block.astype(np.float32, copy=False)
        return
    n, done = -(-x.size * int(rate) // int(sr)), 0
    stream = soxr.ResampleStream(int(sr), int(rate), 1, dtype="float32", quality="HQ")
    for s in range(0, x.size, size):
        y = stream.resample_chunk(np.ascontiguousarray(x[s : s + size], dtype=np.float32), last=s + size >= x.size)
        y = y[: n - done]
        done += y.size
        if y.size:
            yield y
    if done < n:  # soxr rounds the length; the missing tail lies past the input's end: silence
        yield np.zeros(n - done, np.float32)


def slabs(stream: Iterable[np.ndarray], length: int, advance: int, count: int, head: int = 0,
          dtype: DTypeLike = np.float64) -> Iterator[np.ndarray]:
    """``count`` windows ``s[j * advance : j * advance + length]`` (``advance <= length``) of the stream
    ``s``: ``head`` zeros, then the blocks, then zeros. Holds about one window plus one block."""
    source = iter(stream)
    buf = np.zeros(head, dtype)  # s from the current window's start on
    for _ in range(count):
        pieces, have = [buf], buf.size
        while have < length:
            block = next(source, None)
            if block is None:  # past the end: zeros
                pieces.append(np.zeros(length - have, dtype))
                break
            pieces.append(np.asarray(block, dtype=dtype).reshape(-1))
            have += pieces[-1].size
        if len(pieces) > 1:
            buf = np.concatenate(pieces)
        yield buf[:length]
        buf = buf[advance:]


def convolve_blocks(stream: Iterable[np.ndarray], n: int, kernel: np.ndarray, delay: int = 0,
                    group: int = BLOCK) -> Iterator[np.ndarray]:
    """``fft_convolve`` on a stream: float64 blocks of ``y[i] = sum_k kernel[k] * x[i + delay - k]``,
    ``i`` in ``range(n)``, where ``x`` is the concatenated input blocks (zeros past their end).

    Overlap-save on batches of rows ~8x the kernel long: each batch reads its slab of the input
    and keeps only what the next one overlaps, so memory stays near ``group`` samples.
    """
    kernel = np.asarray(kernel, dtype=np.float64).reshape(-1)
    taps = kernel.size
    if not 0 <= delay < max(taps, 1):
        raise ValueError(f"delay must be in [0, {taps}), got {delay}")
    if n <= 0:
        return
    if taps == 0:
        yield np.zeros(n)
        return
    nfft = next_fast_len(max(8 * taps, 8192))
    if n + taps - 1 <= nfft:  # short: one FFT
        nfft = next_fast_len(n + taps - 1)
    step = nfft - taps + 1  # outputs per row: the row's first taps - 1 outputs wrap around
    rows = max(1, min(group // nfft, -(-n // step)))
    per_batch = rows * step
    response = np.fft.rfft(kernel, nfft)
    windows = slabs(stream, per_batch + taps - 1, per_batch, -(-n // per_batch), head=taps - 1 - delay)
    for b, slab in enumerate(windows):
        m = min(per_batch, n - b * per_batch)
        r = -(-m // step)
        frames = np.lib.stride_tricks.sliding_window_view(slab[: (r - 1) * step + nfft], nfft)[::step]
        spectrum = np.fft.rfft(frames, axis=1)
        spectrum *= response
        y = np.fft.irfft(spectrum, nfft, axis=1)[:, taps - 1 :].reshape(-1)[:m]
        del spectrum, frames, slab  # not kept alive while the consumer works on y
        yield y


def fft_convolve(x: np.ndarray, kernel: np.ndarray, delay: int = 0, group: int = BLOCK) -> np.ndarray:
    """``y[i] = sum_k kernel[k] * x[i + delay - k]`` for ``i`` in ``range(len(x))``; zeros outside ``x``.

    Equals ``np.convolve(x, kernel)[delay : delay + len(x)]`` (``0 <= delay < len(kernel)``), by
    overlap-save FFT on rows of the signal (``convolve_blocks``): batched FFTs ~8x the kernel
    length beat one FFT of the whole signal, and besides the output, memory stays near ``group``
    samples however long ``x`` is. Returns float64.
    """
    x = np.asarray(x).reshape(-1)
    return collect(convolve_blocks(blocks(x, max(group, 1)), x.size, kernel, delay, group), x.size)


def _kernel(response: Callable[[int], np.ndarray], size: int, centred: bool, tol: float = 1e-12) -> tuple[np.ndarray, int]:
    """FIR kernel (and its delay) of a filter given by its response on an ``rfft`` grid of any size.

    The grid doubles until the impulse response has died out (< ``tol`` of its peak) over the
    middle half of the period, so truncating it there changes results by ~``tol`` only.
    """
    while True:
        h = np.fft.irfft(response(size), size)
        tiny = np.abs(h) <= tol * np.abs(h).max()
        if tiny[size // 4 : size - size // 4].all():
            break
        if size > 1 << 24:
            raise ValueError("filter response does not decay (unstable or far too narrow)")
        size = next_fast_len(2 * size)
    if not centred:
        return h[: int(np.flatnonzero(~tiny[: size // 2]).max()) + 1], 0
    half = int(np.flatnonzero(~tiny[: size // 2]).max())  # symmetric: h[-i] == h[i]
    return np.concatenate([h[size - half :], h[: half + 1]]), half


def _bandpass_kernel(rate: float, lo: float, hi: float, order: int) -> tuple[np.ndarray, int]:
    """Centred FIR kernel with the forward-backward Butterworth band-pass magnitude (see below)."""
    t_lo, t_hi = np.tan(np.pi * lo / rate), np.tan(np.pi * hi / rate)

    def response(size: int) -> np.ndarray:
        t = np.tan(np.pi * np.fft.rfftfreq(size))  # Nyquist: ~1e16, so the gain is 0
        with np.errstate(divide="ignore", over="ignore"):  # DC: v = -inf, gain 0
            v = (t * t - t_lo * t_hi) / (t * (t_hi - t_lo))
            return 1.0 / (1.0 + v ** (2 * order))

    return _kernel(response, next_fast_len(int(8 * rate / min(lo, hi - lo))), centred=True)


def _odd_extended(stream: Iterable[np.ndarray], ext: int) -> Iterator[np.ndarray]:
    """The blocks of ``x`` with ``ext`` samples of odd reflection before and after (as filtfilt pads):
    ``2 x[0] - x[ext:0:-1]``, ``x``, ``2 x[-1] - x[-2:-ext-2:-1]``; ``x`` must hold more than ``ext``."""
    source = iter(stream)
    pieces, have = [], 0
    for block in source:  # the head reflection needs x[0 : ext + 1]
        pieces.append(np.asarray(block, dtype=np.float64).reshape(-1))
        have += pieces[-1].size
        if have > ext:
            break
    first = np.concatenate(pieces)
    yield 2.0 * first[0] - first[ext:0:-1]
    yield first
    tail = first[-(ext + 1) :]
    for block in source:
        block = np.asarray(block, dtype=np.float64).reshape(-1)
        yield block
        tail = np.concatenate([tail, block[-(ext + 1) :]])[-(ext + 1) :]
    yield 2.0 * tail[-1] - tail[-2 : -ext - 2 : -1]


def bandpass_blocks(stream: Iterable[np.ndarray], n: int, rate: float, lo: float, hi: float, order: int = 4,
                    group: int = BLOCK) -> Iterator[np.ndarray]:
    """``bandpass_zero_phase`` on a stream of ``n`` samples in blocks, as float64 blocks."""
    if n < 2:
        block = np.concatenate([np.asarray(b, dtype=np.float64).reshape(-1) for b in stream] or [np.zeros(0)])
        if block.size:
            yield block
        return
    kernel, half = _bandpass_kernel(rate, lo, hi, order)
    ext = min(n - 1, half)
    # Output i of the extended signal's convolution is x's sample i - ext: start the delay there.
    yield from convolve_blocks(_odd_extended(stream, ext), n, kernel, delay=half + ext, group=group)


def bandpass_zero_phase(x: np.ndarray, rate: float, lo: float, hi: float, order: int = 4) -> np.ndarray:
    """Zero-phase Butterworth band-pass, like ``sosfiltfilt(butter(order, [lo, hi], "bandpass"))``.

    Uses the filter's exact forward-backward magnitude ``|H|^2 = 1 / (1 + v^(2 order))``, where
    ``v`` is the band-pass-to-low-pass frequency map on the bilinear-prewarped axis
    ``tan(pi f / rate)``, as a (long, symmetric) FIR kernel. Both ends are extended by odd
    reflection as filtfilt does, but by the kernel's half-length, so only the first and last few
    ms differ from scipy (whose 27-sample extension leaves a start-up transient). Returns float64;
    ``bandpass_blocks`` gives the same without holding the output.
    """
    x = np.asarray(x).reshape(-1)
    return collect(bandpass_blocks(blocks(x), x.size, rate, lo, hi, order), x.size)


def _check_stable(sections: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
    for _, a in sections:
        # A pole on or outside the unit circle has no decaying causal response to cut.
        if len(a) > 1 and np.abs(np.roots(np.asarray(a, dtype=np.float64))).max() >= 1.0:
            raise ValueError(f"IIR section with denominator {list(a)} is not stable")


def _cascade_kernel(sections: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    _check_stable(sections)

    def response(size: int) -> np.ndarray:
        zinv = np.exp(-2j * np.pi * np.fft.rfftfreq(size))
        out = np.ones(zinv.size, dtype=np.complex128)
        for b, a in sections:
            # Polynomials in z^-1; polyval wants the highest power first.
            out *= np.polyval(np.asarray(b, dtype=np.float64)[::-1], zinv) / np.polyval(np.asarray(a, dtype=np.float64)[::-1], zinv)
        return out

    return _kernel(response, 32768, centred=False)[0]


def lfilter_cascade_blocks(stream: Iterable[np.ndarray], n: int, sections: Sequence[tuple[np.ndarray, np.ndarray]],
                           group: int = BLOCK) -> Iterator[np.ndarray]:
    """``lfilter_cascade`` on a stream of ``n`` samples in blocks, as float64 blocks."""
    yield from convolve_blocks(stream, n, _cascade_kernel(sections), group=group)


def lfilter_cascade(x: np.ndarray, sections: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Causal IIR filtering from rest: ``scipy.signal.lfilter(b, a, .)`` for each section in turn.

    The cascade's impulse response, read off its frequency response ``prod B(z) / A(z)`` and cut
    where it has decayed below 1e-12 of its peak, applied by ``fft_convolve``: equal to lfilter
    to ~1e-10 of full scale, at about lfilter's speed. Raises ``ValueError`` for unstable sections.
    Returns float64; ``lfilter_cascade_blocks`` gives the same without holding the output.
    """
    x = np.asarray(x).reshape(-1)
    return collect(lfilter_cascade_blocks(blocks(x), x.size, sections), x.size)


def cumsum_squares_at(stream: Iterable[np.ndarray], positions: np.ndarray) -> np.ndarray:
    """``np.concatenate([[0], np.cumsum(y * y)])[positions]`` in float64 for a signal ``y`` given as
    blocks, without holding ``y``; positions past its end give the whole sum. Window energies
    follow as differences, e.g. ``c[1:] - c[:-1]`` for consecutive edges."""
    positions = np.asarray(positions, dtype=np.int64).reshape(-1)
    order = np.argsort(positions, kind="stable")
    sorted_pos = positions[order]
    found = np.zeros(sorted_pos.size)
    k = int(np.searchsorted(sorted_pos, 0, side="right"))  # positions <= 0: nothing before them
    total, offset = 0.0, 0
    for block in stream:
        block = np.asarray(block, dtype=np.float64).reshape(-1)
        if block.size == 0:
            continue
        end = offset + block.size
        stop = int(np.searchsorted(sorted_pos, end, side="right"))
        if stop > k:
            csum = np.cumsum(block * block)
            found[k:stop] = total + csum[sorted_pos[k:stop] - offset - 1]
            total += float(csum[-1])
        else:
            total += float(np.dot(block, block))
        k, offset = stop, end
    found[k:] = total
    out = np.empty_like(found)
    out[order] = found
    return out


# scipy.ndimage boundary modes -> np.pad modes.
_PAD_MODES = {"nearest": "edge", "reflect": "symmetric", "mirror": "reflect", "wrap": "wrap"}


def gaussian_filter1d(x: np.ndarray, sigma: float, truncate: float = 4.0, mode: str = "nearest") -> np.ndarray:
    """``scipy.ndimage.gaussian_filter1d(x, sigma, mode=mode, truncate=truncate)`` for 1-D ``x``.

    ``mode`` is one of scipy's "nearest", "reflect", "mirror", "wrap". Returns float64.
    """
    if mode not in _PAD_MODES:
        raise ValueError(f"mode must be one of {sorted(_PAD_MODES)}, got {mode!r}")
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    radius = int(truncate * float(sigma) + 0.5)
    if x.size == 0 or radius == 0:
        return x.copy()
    kernel = np.exp(-0.5 / float(sigma) ** 2 * np.arange(-radius, radius + 1, dtype=np.float64) ** 2)
    kernel /= kernel.sum()
    return np.convolve(np.pad(x, radius, mode=_PAD_MODES[mode]), kernel, mode="valid")


def rank_filter1d(x: np.ndarray, rank: int, size: int, chunk: int = 2048) -> np.ndarray:
    """``scipy.ndimage.rank_filter(x, rank, size=size, mode="nearest")`` for 1-D ``x``.

    The ``rank``-th smallest (0-based) of each centred window, by ``np.partition`` on chunks of
    a sliding-window view: O(n * size), about 50 ms for 30,000 hops with a 501 window.
    """
    x = np.asarray(x)
    if not 0 <= rank < size:
        raise ValueError(f"rank must be in [0, {size}), got {rank}")
    out = np.empty(x.shape, dtype=x.dtype)
    if x.size == 0:
        return out
    left = size // 2
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(x, (left, size - 1 - left), mode="edge"), size)
    for s in range(0, x.size, chunk):
        out[s : s + chunk] = np.partition(windows[s : s + chunk], rank, axis=1)[:, rank]
    return out


def percentile_filter1d(x: np.ndarray, percentile: float, size: int) -> np.ndarray:
    """``scipy.ndimage.percentile_filter(x, percentile, size=size, mode="nearest")`` for 1-D ``x``."""
    if percentile < 0:
        percentile += 100.0
    return rank_filter1d(x, min(int(size * percentile / 100.0), size - 1), size)


def minimum_filter1d(x: np.ndarray, size: int) -> np.ndarray:
    """``scipy.ndimage.minimum_filter1d(x, size, mode="nearest")`` for 1-D ``x``, in O(n).

    Van Herk / Gil-Werman: cut the edge-padded signal into blocks of ``size``; every window
    spans the tail of one block and the head of the next, so its minimum is the smaller of a
    suffix-minimum and a prefix-minimum, both running minima from ``np.minimum.accumulate``.
    """
    x = np.asarray(x).reshape(-1)
    n = x.size
    if n == 0 or size <= 1:
        return x.copy()
    left = size // 2
    n_blocks = -(-(n + size - 1) // size)
    fill = np.inf if np.issubdtype(x.dtype, np.floating) else np.iinfo(x.dtype).max
    blocks = np.full(n_blocks * size, fill, dtype=x.dtype)
    blocks[:left] = x[0]
    blocks[left : left + n] = x
    blocks[left + n : n + size - 1] = x[-1]
    blocks = blocks.reshape(n_blocks, size)
    prefix = np.minimum.accumulate(blocks, axis=1).reshape(-1)
    suffix = np.empty_like(blocks)
    np.minimum.accumulate(blocks[:, ::-1], axis=1, out=suffix[:, ::-1])
    return np.minimum(suffix.reshape(-1)[:n], prefix[size - 1 : size - 1 + n])


def uniform_filter1d(x: np.ndarray, size: int) -> np.ndarray:
    """``scipy.ndimage.uniform_filter1d(x, size, mode="nearest")`` for 1-D ``x`` (same dtype).

    Window ``[i - size // 2, i - size // 2 + size)`` as in scipy, from a float64 running sum.
    """
    x = np.asarray(x).reshape(-1)
    n = x.size
    if n == 0 or size <= 1:
        return x.copy()
    left = size // 2
    padded = np.empty(n + size - 1)
    padded[:left] = x[0]
    padded[left : left + n] = x
    padded[left + n :] = x[-1]
    csum = np.empty(n + size)
    csum[0] = 0.0
    np.cumsum(padded, out=csum[1:])
    out = csum[size:] - csum[:-size]
    out *= 1.0 / size
    return out.astype(x.dtype, copy=False)
