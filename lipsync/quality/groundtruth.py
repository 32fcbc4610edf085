"""Speech with exact phoneme timings, for measuring lip sync against ground truth.

libespeak-ng (through ctypes) synthesizes the text and, in its synthesis callback, reports every
phoneme it speaks (espeakEVENT_PHONEME) with its position in the audio: that position is where the
synthesizer itself put the phoneme, not a recognizer's guess, so it grades any engine, ours included.

Also the measuring corpus: sentences x voices x rates, split into a tuning half and a held-out half
that share neither a sentence nor a voice (see ``corpus``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import re
import threading
from dataclasses import dataclass
from typing import NamedTuple, Optional

import numpy as np

from ..errors import EngineError, InputError

RATE = 16000  # output sample rate, the one the speech analysis uses
PAD_S = 0.4  # silence added before and after each utterance: pauses to grade closed mouths on

# espeak-ng's speak_lib.h values (the Debian package ships no header; these are part of its stable ABI).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_RATE_PARAMETER = 1
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
MIN_RATE, MAX_RATE = 80, 450  # words per minute espeak-ng accepts


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms from the start of the synthesis
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),  # id.string: the phoneme mnemonic, NUL-terminated only when shorter than 8 bytes
    ]


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),  # (priority byte, language, NUL) pairs
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


class GroundPhone(NamedTuple):
    start: float  # seconds
    end: float
    phoneme: str  # espeak-ng mnemonic, e.g. "m", "u:", "_:" (a pause)


class _Espeak:
    """The library, loaded and initialised once: libespeak-ng keeps one synthesizer per process,
    so every call goes through one lock."""

    def __init__(self):
        name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            self.lib = ctypes.CDLL(name)
        except OSError as exc:
            raise EngineError("libespeak-ng is not installed (Debian: espeak-ng; `make sysdeps`)") from exc
        lib = self.lib
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self.rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _INITIALIZE_PHONEME_EVENTS)
        if self.rate <= 0:
            raise EngineError("libespeak-ng failed to initialise (espeak-ng-data missing?)")
        self.lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, str]] = []
        self._callback = _CALLBACK(self._collect)  # kept referenced: the library holds only the pointer
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, n_samples, events) -> int:
        if n_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (n_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            event = events[i]
            if event.type == _EVENT_PHONEME:
                name = bytes(event.id.string).split(b"\0")[0].decode("utf-8", "replace")
                self._events.append((event.audio_position, name))
            i += 1
        return 0  # 0: go on synthesizing

    def _voice_name(self, voice: str) -> bytes:
        """espeak_SetVoiceByName knows file names ("gmw/en", "en-us"), not every language code: map a
        language code ("en-gb") to the file of its best voice, keeping a "+variant" suffix."""
        language, plus, variant = voice.partition("+")
        voices = self.lib.espeak_ListVoices(None)
        best: Optional[tuple[int, bytes]] = None
        i = 0
        while voices[i]:
            v = voices[i].contents
            identifier = v.identifier or b""
            # Only the first (priority, name NUL) pair, the voice's own language: in 1.51 the list is not
            # reliably terminated after it.
            primary = ctypes.string_at(v.languages) if v.languages else b""
            if len(primary) > 1 and not identifier.startswith(b"mb/"):  # mbrola voices need extra data
                if primary[1:].decode("ascii", "replace").lower() == language.lower():
                    if best is None or primary[0] < best[0]:
                        best = (primary[0], identifier)
            i += 1
        if best is None:
            raise InputError("voice", f"no espeak-ng voice for language {language!r}")
        return best[1] + (plus + variant).encode()

    def synthesize(self, text: str, voice: str, rate: int) -> tuple[np.ndarray, list[tuple[int, str]]]:
        if not MIN_RATE <= rate <= MAX_RATE:
            raise InputError("rate", f"must be {MIN_RATE}..{MAX_RATE} words per minute")
        with self.lock:
            if self.lib.espeak_SetVoiceByName(self._voice_name(voice)) != 0:
                raise InputError("voice", f"espeak-ng cannot set voice {voice!r}")
            self.lib.espeak_SetParameter(_RATE_PARAMETER, int(rate), 0)
            self._chunks, self._events = [], []
            data = text.encode("utf-8") + b"\0"
            buf = ctypes.create_string_buffer(data, len(data))
            if self.lib.espeak_Synth(buf, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None) != 0:
                raise EngineError("espeak-ng failed to synthesize the text")
            self.lib.espeak_Synchronize()
            audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
            return audio, list(self._events)


_ENGINE: Optional[_Espeak] = None
_ENGINE_LOCK = threading.Lock()


def _espeak() -> _Espeak:
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = _Espeak()
        return _ENGINE


def synthesize(text: str, voice: str = "en-us", rate: int = 160, *, pad: float = PAD_S) -> tuple[np.ndarray, list[GroundPhone]]:
    """(float32 mono audio at 16 kHz, phonemes with their exact times) for ``text`` spoken by espeak-ng.

    ``voice``: a language code with an optional variant ("en-us", "en-gb+f3", "en-us+m7"); ``rate``:
    words per minute. ``pad`` seconds of silence are added at each end, as "_" phonemes. Each phoneme
    lasts until the next one starts (a stop from the start of its closure); the last ends with the audio.
    """
    import librosa

    engine = _espeak()
    samples, events = engine.synthesize(text, voice, rate)
    speech = librosa.resample(samples.astype(np.float32) / 32768.0, orig_sr=engine.rate, target_sr=RATE)
    gap = np.zeros(int(round(pad * RATE)), np.float32)
    audio = np.concatenate([gap, speech.astype(np.float32), gap])
    duration = audio.size / RATE
    starts = [pad + ms / 1000.0 for ms, _ in events]
    names = [name for _, name in events]
    phones: list[GroundPhone] = [GroundPhone(0.0, starts[0] if starts else duration, "_")] if pad > 0 else []
    for i, (start, name) in enumerate(zip(starts, names)):
        end = starts[i + 1] if i + 1 < len(starts) else duration
        if end > start:
            phones.append(GroundPhone(start, end, name))
    if phones and phones[-1].end < duration:  # the trailing pad
        phones.append(GroundPhone(phones[-1].end, duration, "_"))
    return audio, _with_closures(audio, phones)


_STOP = re.compile(r"^(?:[ptkbdg]|tS|dZ)[0-9#]*$")
CLOSURE_DB = -50.0  # below the utterance's loudest 10 ms: the digital silence of a stop's closure
MAX_CLOSURE_S = 0.15


def _with_closures(audio: np.ndarray, phones: list[GroundPhone]) -> list[GroundPhone]:
    """espeak-ng reports a stop at its release: the closure (silence) before it lies at the end of the
    previous phoneme's span (in "map", the last ~50 ms of "a" are silent). Move each stop's start back
    over that silence, so a /p/ spans the time the lips are shut."""
    hop = RATE // 200  # 5 ms
    n = audio.size // hop
    if n == 0:
        return phones
    power = np.convolve(np.square(audio[: n * hop].astype(np.float64)), np.ones(2 * hop) / (2 * hop), "same")[::hop]
    quiet = power < power.max() * 10 ** (CLOSURE_DB / 10)
    out = list(phones)
    for i in range(1, len(out)):
        if not _STOP.match(out[i].phoneme) or out[i - 1].phoneme.startswith("_"):
            continue
        event = int(round(out[i].start * 200))
        floor = max(out[i - 1].start, out[i].start - MAX_CLOSURE_S)
        # The 10 ms window just before the release already hears the burst: look 15 ms back.
        k = next((j + 1 for j in range(event - 1, event - 4, -1) if 0 <= j < n and quiet[j]), None)
        if k is None:
            continue
        while k - 1 >= 0 and quiet[k - 1] and (k - 1) / 200 >= floor:
            k -= 1
        start = min(out[i].start, max(floor, k / 200))
        if start < out[i].start:
            out[i - 1] = out[i - 1]._replace(end=start)
            out[i] = out[i]._replace(start=start)
    return out


# -- phoneme classes ---------------------------------------------------------------------------------

# espeak-ng's English mnemonics (espeak-ng -x prints them: "map" m'ap, "boot" b'u:t, "beet" b'i:t,
# "goat" g'oUt, "thought" T'O:t, "north" n'O@T, "book" b'Uk, "boy" b'OI, "now" n'aU, "we" w'i:).
BILABIAL = frozenset({"p", "b", "m"})
# Lips rounded (and pushed forward): GOOSE, FOOT, CURE, GOAT, THOUGHT, NORTH, CHOICE (starts rounded),
# MOUTH (ends rounded), /w/. Not "0" (LOT): espeak's en-us speaks it unrounded.
ROUNDED = frozenset({"u:", "U", "U@", "u@", "oU", "o:", "o@", "O:", "O@", "O", "OI", "aU", "w"})
# Lips spread: FLEECE, KIT, happY, FACE, DRESS.
SPREAD = frozenset({"i:", "i", "I", "I2", "I#", "i@", "eI", "e", "E"})


def phone_class(phoneme: str) -> Optional[str]:
    """"bilabial", "rounded", "spread", "pause" or None for an espeak-ng mnemonic. Allophone marks
    (a trailing digit or "#", as in "t2", "I2", "a#") are ignored unless the marked name is listed."""
    if phoneme.startswith("_"):
        return "pause"
    for name in (phoneme, re.sub(r"[0-9#]+$", "", phoneme)):
        if name in BILABIAL:
            return "bilabial"
        if name in ROUNDED:
            return "rounded"
        if name in SPREAD:
            return "spread"
    return None


# -- corpus -------------------------------------------------------------------------------------------

# Written for this measurement (none of them is in the tests): many /p b m/ in every position, rounded
# (oo, oh, aw, w) and spread (ee, i, ay) vowels, and pauses at commas and full stops.
SENTENCES: tuple[str, ...] = (
    "Pete keeps a map in his pocket, but he knows the way home.",
    "Who moved my blue boots? Maybe Paul knows.",
    "We will meet by the pool at noon, then walk home.",
    "Big bees buzz over the pink roses, in the warm noon sun.",
    "Mow the lawn, Bill. Then please put the bowl back.",
    "The moon rose slowly over the empty beach.",
    "Peas, beans and plums make a cheap, good soup for two.",
    "Bring me the paper, please. It is about the boat show.",
    "Ruby wore a woolen robe, and we both sipped warm soup.",
    "Maybe we could swim, but the water looks too cold.",
    "Tim, keep the baby busy while I mop the room.",
    "Open the window, Pam. No, wait, keep it shut.",
)
VOICES: tuple[str, ...] = ("en-us", "en-gb", "en-gb+f3", "en-us+m7", "en-gb-scotland", "en-us+f2")
RATES: tuple[int, ...] = (120, 160, 200)
# Each half has a US and a British voice, male and female; sentences alternate.
TUNE_VOICES = frozenset({"en-us", "en-gb+f3", "en-gb-scotland"})
TUNE_SENTENCES = frozenset(range(0, len(SENTENCES), 2))


@dataclass(frozen=True)
class Item:
    sentence: int  # index into SENTENCES
    voice: str
    rate: int  # words per minute
    split: str  # "tune" or "held-out"

    @property
    def text(self) -> str:
        return SENTENCES[self.sentence]

    @property
    def name(self) -> str:
        return f"s{self.sentence:02d}-{self.voice.replace('+', '_')}-{self.rate}"

    def synthesize(self) -> tuple[np.ndarray, list[GroundPhone]]:
        return synthesize(self.text, self.voice, self.rate)


def corpus(split: str | None = None) -> list[Item]:
    """The items of one half ("tune" or "held-out"), or of both. A tuning item has a tuning sentence
    AND a tuning voice, a held-out item a held-out sentence AND voice: the two halves share neither.
    (The mixed combinations belong to no half.)"""
    if split not in (None, "tune", "held-out"):
        raise InputError("split", "must be 'tune' or 'held-out'")
    items = []
    for s in range(len(SENTENCES)):
        for voice in VOICES:
            tune_s, tune_v = s in TUNE_SENTENCES, voice in TUNE_VOICES
            if tune_s != tune_v:
                continue
            half = "tune" if tune_s else "held-out"
            if split in (None, half):
                items.extend(Item(s, voice, rate, half) for rate in RATES)
    return items
