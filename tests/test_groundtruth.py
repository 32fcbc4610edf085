"""Ground-truth speech from libespeak-ng: phoneme times from the synthesizer itself, the phoneme classes,
and the tuning / held-out corpus."""

from __future__ import annotations

import numpy as np
import pytest

from lipsync.errors import InputError
from lipsync.quality.groundtruth import (RATE, RATES, SENTENCES, VOICES, corpus, phone_class, synthesize)


def _power_db(audio: np.ndarray, start: float, end: float, peak: float) -> float:
    """Quietest 10 ms of audio[start:end] in dB below ``peak`` (mean square)."""
    x = audio[int(start * RATE) : int(end * RATE)].astype(np.float64)
    win = RATE // 100
    power = np.convolve(x**2, np.ones(win) / win, "valid")
    return float(10 * np.log10(power.min() / peak + 1e-20))


@pytest.mark.parametrize("voice,rate", [("en-us", 160), ("en-gb+f3", 200), ("en-us+m7", 120)])
def test_phoneme_times_are_monotonic_and_cover_the_audio(voice, rate):
    audio, phones = synthesize("Maybe we could swim, but the water looks too cold.", voice, rate)
    assert audio.dtype == np.float32 and audio.ndim == 1
    duration = audio.size / RATE
    assert 2.0 < duration < 6.0
    assert phones[0].start == 0.0 and phones[-1].end == pytest.approx(duration)
    for a, b in zip(phones, phones[1:]):
        assert a.end == b.start and a.start < a.end  # contiguous, in order, none empty
    kinds = [phone_class(p.phoneme) for p in phones]
    assert kinds.count("bilabial") >= 3  # m(aybe) b(e) b(ut)
    assert kinds.count("rounded") >= 3 and kinds.count("spread") >= 2
    # Speech where phonemes are, silence in the padding.
    assert np.abs(audio[: int(0.3 * RATE)]).max() < 1e-3
    assert np.abs(audio[int(phones[1].start * RATE) : int(phones[-2].end * RATE)]).max() > 0.1


def test_a_slower_rate_takes_longer():
    fast, _ = synthesize("Peas, beans and plums make a cheap meal.", "en-us", 200)
    slow, _ = synthesize("Peas, beans and plums make a cheap meal.", "en-us", 120)
    assert slow.size > 1.4 * fast.size


def test_the_p_of_map_is_where_the_audio_is_shut():
    audio, phones = synthesize("map", "en-us", 160)
    names = [p.phoneme for p in phones if phone_class(p.phoneme) != "pause"]
    assert names == ["m", "a", "p"]
    m, a, p = (next(x for x in phones if x.phoneme == n) for n in names)
    peak = float(np.max(np.convolve(audio.astype(np.float64) ** 2, np.ones(160) / 160, "valid")))
    quarter = (a.end - a.start) / 4
    assert _power_db(audio, a.start + quarter, a.end - quarter, peak) > -15  # the vowel is loud
    assert _power_db(audio, p.start, p.end, peak) < -60  # the /p/ holds the closure's silence
    assert -40 < _power_db(audio, m.start + 0.01, m.end - 0.03, peak) < -6  # the /m/: a murmur, lips shut


@pytest.mark.parametrize("word,kinds", [
    ("map", ["bilabial", None, "bilabial"]),
    ("boot", ["bilabial", "rounded", None]),
    ("beet", ["bilabial", "spread", None]),
    ("we", ["rounded", "spread"]),
])
def test_phoneme_classes_of_known_words(word, kinds):
    _, phones = synthesize(word, "en-gb", 160)
    assert [phone_class(p.phoneme) for p in phones if phone_class(p.phoneme) != "pause"] == kinds


def test_unknown_voice_and_bad_rate_are_input_errors():
    with pytest.raises(InputError) as err:
        synthesize("hello", "xx-nowhere", 160)
    assert err.value.field == "voice"
    with pytest.raises(InputError) as err:
        synthesize("hello", "en-us", 20)
    assert err.value.field == "rate"


def test_the_halves_share_no_sentence_and_no_voice():
    tune, held = corpus("tune"), corpus("held-out")
    assert tune and held and len(corpus()) == len(tune) + len(held)
    assert not {i.sentence for i in tune} & {i.sentence for i in held}
    assert not {i.voice for i in tune} & {i.voice for i in held}
    assert {i.rate for i in held} == set(RATES) and {i.voice for i in tune} | {i.voice for i in held} == set(VOICES)
    assert corpus("held-out") == held  # deterministic
    assert not any("Bob bought a map" in s for s in SENTENCES)  # the project's test sentence is not material
    with pytest.raises(InputError):
        corpus("train")
