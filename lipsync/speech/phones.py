"""English phone timings from pocketsphinx 5's bundled en-US model.

Two modes: phone decoding (allphone search with the phonetic LM) when there is no transcript,
and forced alignment when there is one. Both are noisy on unusual voices (espeak-ng's synthetic
voice especially), so callers must treat the labels as hints and check them against acoustics.

A decoder takes ~0.2 s to build (it loads the CMU dictionary); pass one in to reuse it. Decoders
are not thread-safe: use one per thread.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

RATE = 16000
_FRAME_S = 0.01  # pocketsphinx's default frame rate is 100 frames/s
# Wide beams: the default ones lose the only path through the alignment grammar on
# synthetic or noisy speech ("Final result does not match the grammar").
_ALIGN_BEAMS = dict(beam=1e-100, pbeam=1e-100, wbeam=1e-80)
_MAX_OOV_FRACTION = 0.25
_SEGMENT_S = 30.0  # longest utterance decoded at once (see decode_phones)
_PCM_BLOCK = 1 << 16  # samples converted to PCM at a time


@dataclass(frozen=True)
class Phone:
    label: str  # ARPAbet without stress, e.g. "B", "AA", "SIL"
    start: float  # seconds
    end: float


def phone_decoder():
    """A decoder set up for phone decoding (allphone search); settings from pocketsphinx's own test."""
    from pocketsphinx import Decoder, get_model_path

    return Decoder(
        allphone=get_model_path("en-us/en-us-phone.lm.bin"),
        lm=None, lw=2.0, pip=0.3, beam=1e-200, pbeam=1e-20, loglevel="FATAL",
    )


def align_decoder():
    """A decoder set up for forced alignment (dictionary, no language model)."""
    from pocketsphinx import Decoder

    return Decoder(lm=None, bestpath=False, loglevel="FATAL", **_ALIGN_BEAMS)


def _pcm16(audio16k: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """16-bit PCM samples (int16 array) with a faint fixed dither, converted in blocks.

    Exact digital silence (as TTS produces) breaks pocketsphinx's log-energy features and makes
    alignment fail; noise at about -80 dBFS fixes that without touching real recordings. Pass one
    ``rng`` through consecutive pieces of a signal to give them the dither of the whole.
    """
    x = np.asarray(audio16k).reshape(-1)
    rng = rng or np.random.default_rng(0)
    full_scale = float(np.iinfo(x.dtype).max) if np.issubdtype(x.dtype, np.integer) else 1.0
    out = np.empty(x.size, dtype="<i2")
    for s in range(0, x.size, _PCM_BLOCK):
        y = np.nan_to_num(x[s : s + _PCM_BLOCK].astype(np.float64) / full_scale)
        y = np.clip(y, -1.0, 1.0) * 32767.0 + rng.normal(0.0, 3.0, y.size)
        out[s : s + _PCM_BLOCK] = np.clip(np.round(y), -32768, 32767)
    return out


def _segments(audio16k: np.ndarray, longest: int) -> list[tuple[int, int]]:
    """Cut audio longer than ``longest`` samples into pieces no longer, each cut in the quietest
    200 ms of the second half of its piece (a pause, in speech), on the 10 ms frame grid."""
    x = np.asarray(audio16k).reshape(-1)
    n, hop = x.size, int(RATE * _FRAME_S)
    if n <= longest:
        return [(0, n)]
    hops = x[: n // hop * hop].reshape(-1, hop)
    energy = np.einsum("ij,ij->i", hops, hops, dtype=np.float64)  # no squared copy of the signal
    quiet = np.convolve(energy, np.ones(20), mode="same")
    cuts, start = [0], 0
    while n - start > longest:
        lo, hi = (start + longest // 2) // hop, (start + longest) // hop
        start = (lo + int(np.argmin(quiet[lo:hi]))) * hop
        cuts.append(start)
    return list(zip(cuts, [*cuts[1:], n]))


def _label(name: str) -> str:
    # Fillers (+NSN+, +SPN+, <sil>, ...) become SIL; stress digits are dropped.
    name = name.strip().upper()
    if not name or name.startswith(("+", "<", "(")) or name == "SIL":
        return "SIL"
    return re.sub(r"\d", "", name)


def _run(decoder, pcm: np.ndarray) -> None:
    decoder.start_utt()
    decoder.process_raw(pcm.view(np.uint8), full_utt=True)  # the bindings take any byte buffer: no copy
    decoder.end_utt()


def decode_phones(audio16k: np.ndarray, *, decoder=None) -> list[Phone]:
    """Phone labels and timings for 16 kHz mono audio, without a transcript.

    ``decoder`` may be one from ``phone_decoder()`` to skip the construction cost. Audio longer
    than ``_SEGMENT_S`` is decoded as several utterances cut at pauses: pocketsphinx's search
    keeps ~0.2 MB per second of an utterance, and its normalisation works on utterance-sized pieces.
    """
    x = np.asarray(audio16k).reshape(-1)
    if x.size == 0:
        return []
    decoder = decoder or phone_decoder()
    rng = np.random.default_rng(0)  # one dither sequence across the pieces, as for the whole
    phones = []
    for a, b in _segments(x, int(_SEGMENT_S * RATE)):
        _run(decoder, _pcm16(x[a:b], rng))
        offset = a // int(RATE * _FRAME_S)
        for seg in decoder.seg() or []:
            start, end = (seg.start_frame + offset) * _FRAME_S, (seg.end_frame + 1 + offset) * _FRAME_S
            if end > start:
                phones.append(Phone(_label(seg.word), start, end))
    return phones


def transcript_words(transcript: str) -> list[str]:
    """Lower-case word tokens as the CMU dictionary spells them ("Don't" -> "don't")."""
    text = transcript.lower().replace("\u2019", "'").replace("\u2018", "'")
    return [w.strip("'") for w in re.findall(r"[a-z0-9']+", text) if w.strip("'")]


def _word_pieces(segments: list[tuple[str, int, int]], n_frames: int, longest: int) -> list[tuple[int, int, list[str]]]:
    """Cut a word segmentation (word, first frame, last frame) into pieces of at most ``longest``
    frames, each cut in the longest pause of its second half (else between two words), with the
    words whose middle falls in each piece."""
    filler = ("<", "[", "+")  # <sil>, <s>, </s>, [NOISE], [SPEECH]: pauses, not transcript words
    words = [(w, a, b) for w, a, b in segments if not w.startswith(filler)]
    # Candidate cuts: the middle of each pause (scored by its length), else any word boundary.
    cuts = [((a + b + 1) // 2, b - a + 1) for w, a, b in segments if w.startswith(filler)]
    cuts += [(b + 1, 0) for _, _, b in words]
    edges, start = [0], 0
    while n_frames - start > longest:
        ok = [(score, f) for f, score in cuts if start + longest // 2 < f <= start + longest]
        ok = ok or [(0, f) for f, _ in cuts if start < f <= start + longest]
        start = max(ok)[1] if ok else start + longest  # no boundary at all: a word gets split
        edges.append(start)
    edges.append(n_frames)
    return [(f0, f1, [re.sub(r"\(\d+\)$", "", w) for w, a, b in words if f0 <= (a + b) // 2 < f1])
            for f0, f1 in zip(edges, edges[1:])]


def _align_pass(decoder, words: list[str], pcm: np.ndarray) -> bool:
    """Both alignment passes over one piece; False when the search loses the transcript."""
    decoder.set_align_text(" ".join(words))
    _run(decoder, pcm)  # first pass: word segmentation
    if decoder.hyp() is None:
        return False
    decoder.set_alignment()
    _run(decoder, pcm)  # second pass: phone (and state) durations
    return True


def align_phones(audio16k: np.ndarray, transcript: str, *, decoder=None) -> list[Phone] | None:
    """Force-align ``transcript`` to 16 kHz mono audio; None when that fails.

    Words missing from the dictionary are skipped; if more than a quarter of the words are
    missing, the alignment would be mostly guesswork, so this gives None as well.
    ``decoder`` may be one from ``align_decoder()``. Past ``_SEGMENT_S``, the word pass runs on
    the whole and the phone pass on pieces cut at its pauses: the phone pass holds frames x
    states, quadratic in the length (1.6 GB for a 5-minute text in one piece).
    """
    words = transcript_words(transcript or "")
    if not words or np.asarray(audio16k).size == 0:
        return None
    decoder = decoder or align_decoder()
    known = [w for w in words if decoder.lookup_word(w) is not None]
    missing = len(words) - len(known)
    if missing:
        log.info("align_phones: %d of %d words not in the dictionary", missing, len(words))
    if not known or missing > _MAX_OOV_FRACTION * len(words):
        return None
    x = np.asarray(audio16k).reshape(-1)
    pcm = _pcm16(x)
    hop = int(RATE * _FRAME_S)
    phones: list[Phone] = []
    try:
        if x.size <= _SEGMENT_S * RATE:
            pieces = [(0, -(-x.size // hop), known)]
        else:
            decoder.set_align_text(" ".join(known))
            _run(decoder, pcm)
            if decoder.hyp() is None:
                return None
            segments = [(seg.word, seg.start_frame, seg.end_frame) for seg in decoder.seg() or []]
            pieces = _word_pieces(segments, -(-x.size // hop), int(_SEGMENT_S / _FRAME_S))
        for f0, f1, piece_words in pieces:
            if not piece_words:
                continue
            if not _align_pass(decoder, piece_words, pcm[f0 * hop : f1 * hop]):
                return None
            alignment = decoder.get_alignment()
            if alignment is None:
                return None
            for entry in alignment.phones():
                start, end = (entry.start + f0) * _FRAME_S, (entry.start + entry.duration + f0) * _FRAME_S
                if end > start:
                    phones.append(Phone(_label(entry.name), start, end))
    except RuntimeError as exc:  # the bindings raise RuntimeError for bad text / failed search
        log.info("align_phones: alignment failed: %s", exc)
        return None
    finally:
        try:
            decoder.activate_search()  # leave a reused decoder in its default state
        except Exception:  # noqa: BLE001 - nothing else to restore to
            pass
    return phones or None
