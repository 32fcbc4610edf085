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


def _pcm16(audio16k: np.ndarray) -> bytes:
    """16-bit PCM bytes with a faint fixed dither.

    Exact digital silence (as TTS produces) breaks pocketsphinx's log-energy features and makes
    alignment fail; noise at about -80 dBFS fixes that without touching real recordings.
    """
    x = np.asarray(audio16k)
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float64) / np.iinfo(x.dtype).max
    x = np.clip(np.nan_to_num(x.astype(np.float64)), -1.0, 1.0) * 32767.0
    x = x + np.random.default_rng(0).normal(0.0, 3.0, x.size)
    return np.clip(np.round(x), -32768, 32767).astype("<i2").tobytes()


def _label(name: str) -> str:
    # Fillers (+NSN+, +SPN+, <sil>, ...) become SIL; stress digits are dropped.
    name = name.strip().upper()
    if not name or name.startswith(("+", "<", "(")) or name == "SIL":
        return "SIL"
    return re.sub(r"\d", "", name)


def _run(decoder, pcm: bytes) -> None:
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()


def decode_phones(audio16k: np.ndarray, *, decoder=None) -> list[Phone]:
    """Phone labels and timings for 16 kHz mono audio, without a transcript.

    ``decoder`` may be one from ``phone_decoder()`` to skip the construction cost.
    """
    if np.asarray(audio16k).size == 0:
        return []
    decoder = decoder or phone_decoder()
    _run(decoder, _pcm16(audio16k))
    phones = []
    for seg in decoder.seg() or []:
        start, end = seg.start_frame * _FRAME_S, (seg.end_frame + 1) * _FRAME_S
        if end > start:
            phones.append(Phone(_label(seg.word), start, end))
    return phones


def transcript_words(transcript: str) -> list[str]:
    """Lower-case word tokens as the CMU dictionary spells them ("Don't" -> "don't")."""
    text = transcript.lower().replace("\u2019", "'").replace("\u2018", "'")
    return [w.strip("'") for w in re.findall(r"[a-z0-9']+", text) if w.strip("'")]


def align_phones(audio16k: np.ndarray, transcript: str, *, decoder=None) -> list[Phone] | None:
    """Force-align ``transcript`` to 16 kHz mono audio; None when that fails.

    Words missing from the dictionary are skipped; if more than a quarter of the words are
    missing, the alignment would be mostly guesswork, so this gives None as well.
    ``decoder`` may be one from ``align_decoder()``.
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
    pcm = _pcm16(audio16k)
    try:
        decoder.set_align_text(" ".join(known))
        _run(decoder, pcm)  # first pass: word segmentation
        if decoder.hyp() is None:
            return None
        decoder.set_alignment()
        _run(decoder, pcm)  # second pass: phone (and state) durations
        alignment = decoder.get_alignment()
    except RuntimeError as exc:  # the bindings raise RuntimeError for bad text / failed search
        log.info("align_phones: alignment failed: %s", exc)
        return None
    finally:
        try:
            decoder.activate_search()  # leave a reused decoder in its default state
        except Exception:  # noqa: BLE001 - nothing else to restore to
            pass
    if alignment is None:
        return None
    phones = []
    for entry in alignment.phones():
        start = entry.start * _FRAME_S
        end = (entry.start + entry.duration) * _FRAME_S
        if end > start:
            phones.append(Phone(_label(entry.name), start, end))
    return phones or None
