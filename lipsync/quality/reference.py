"""The phones a sync report grades against: a transcript's forced alignment, or ground truth.

Deliberately separate from ``lipsync.speech.phones`` (the engine's phone decoder and aligner): a referee
that shares the engine's code would agree with the engine's mistakes, as it did when the report graded
only the /p b m/ the engine's own decoder had found. This module drives pocketsphinx's aligner itself
and never decodes phones without a transcript: without one, there is no reference.
"""

from __future__ import annotations

import logging
import re
from typing import NamedTuple, Optional, Sequence

import numpy as np

log = logging.getLogger(__name__)

RATE = 16000
_FRAME_S = 0.01  # pocketsphinx's frame
_CHUNK_S = 25.0  # the phone pass is quadratic in length: align longer audio in pieces cut between words
# Wide beams: the default ones lose the only path through the alignment grammar on synthetic speech.
_BEAMS = dict(beam=1e-100, pbeam=1e-100, wbeam=1e-80)

# ARPAbet (pocketsphinx's en-us dictionary) by lip shape.
ARPABET_KINDS = {
    "P": "bilabial", "B": "bilabial", "M": "bilabial",
    "UW": "rounded", "UH": "rounded", "OW": "rounded", "AO": "rounded", "OY": "rounded", "AW": "rounded",
    "W": "rounded",
    "IY": "spread", "IH": "spread", "EY": "spread", "EH": "spread",
}


class ReferencePhone(NamedTuple):
    start: float  # seconds
    end: float
    label: str  # as the source names it (ARPAbet for an alignment, espeak-ng mnemonics for ground truth)
    kind: Optional[str]  # "bilabial", "rounded", "spread", or None


def from_ground_truth(phones: Sequence) -> list[ReferencePhone]:
    """ReferencePhones from ``groundtruth.synthesize``'s (start, end, phoneme) list."""
    from .groundtruth import phone_class

    out = []
    for start, end, phoneme in phones:
        kind = phone_class(phoneme)
        out.append(ReferencePhone(float(start), float(end), phoneme, None if kind == "pause" else kind))
    return out


def _words(transcript: str) -> list[str]:
    text = transcript.lower().replace("\u2019", "'")
    return [w.strip("'") for w in re.findall(r"[a-z0-9']+", text) if w.strip("'")]


def _pcm(audio16k: np.ndarray) -> bytes:
    # A faint fixed dither (about -80 dBFS): synthetic speech's exact digital silence breaks
    # pocketsphinx's log-energy features.
    x = np.clip(np.nan_to_num(np.asarray(audio16k, np.float64).reshape(-1)), -1, 1) * 32767
    x += np.random.default_rng(1).normal(0, 3, x.size)
    return np.clip(np.round(x), -32768, 32767).astype("<i2").tobytes()


def _utterance(decoder, pcm: bytes) -> None:
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()


def align_transcript(audio16k: np.ndarray, transcript: str) -> Optional[list[ReferencePhone]]:
    """Phones of ``transcript`` force-aligned to 16 kHz mono audio by pocketsphinx; None when the
    alignment fails or more than a quarter of the words are not in the dictionary."""
    from pocketsphinx import Decoder

    words = _words(transcript or "")
    x = np.asarray(audio16k, np.float32).reshape(-1)
    if not words or x.size == 0:
        return None
    decoder = Decoder(lm=None, bestpath=False, loglevel="FATAL", **_BEAMS)
    known = [w for w in words if decoder.lookup_word(w) is not None]
    if len(known) < 0.75 * len(words):
        log.info("align_transcript: %d of %d words not in the dictionary", len(words) - len(known), len(words))
        return None
    try:
        pieces = [(0, x.size, known)]
        if x.size > _CHUNK_S * RATE:
            pieces = _pieces(decoder, x, known)
            if pieces is None:
                return None
        phones = []
        for a, b, piece_words in pieces:
            if not piece_words:
                continue
            pcm = _pcm(x[a:b])
            decoder.set_align_text(" ".join(piece_words))
            _utterance(decoder, pcm)  # word pass
            if decoder.hyp() is None:
                return None
            decoder.set_alignment()
            _utterance(decoder, pcm)  # phone pass
            alignment = decoder.get_alignment()
            if alignment is None:
                return None
            offset = a / RATE
            for entry in alignment.phones():
                start = offset + entry.start * _FRAME_S
                end = start + entry.duration * _FRAME_S
                label = re.sub(r"\d", "", entry.name.upper())
                if end > start:
                    phones.append(ReferencePhone(start, end, label, ARPABET_KINDS.get(label)))
    except RuntimeError as exc:  # the bindings raise it for text they cannot align
        log.info("align_transcript: %s", exc)
        return None
    return phones or None


def _pieces(decoder, x: np.ndarray, words: list[str]) -> Optional[list[tuple[int, int, list[str]]]]:
    """Cut long audio between words (from a word pass over the whole) into pieces of <= _CHUNK_S."""
    decoder.set_align_text(" ".join(words))
    _utterance(decoder, _pcm(x))
    if decoder.hyp() is None:
        return None
    hop = int(RATE * _FRAME_S)
    segs = [(s.word, s.start_frame, s.end_frame) for s in decoder.seg() or []
            if not s.word.startswith(("<", "[", "+"))]
    pieces, cur, start = [], [], 0
    for word, f0, f1 in segs:
        if cur and (f1 + 1) * hop - start > _CHUNK_S * RATE:
            cut = f0 * hop
            pieces.append((start, cut, cur))
            cur, start = [], cut
        cur.append(re.sub(r"\(\d+\)$", "", word))
    pieces.append((start, x.size, cur))
    return pieces
