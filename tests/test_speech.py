"""Speech -> mouth track, on real espeak-ng speech made on the fly."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from conftest import make_speech, traced_peak
from lipsync.errors import InputError
from lipsync.speech import (
    VISEMES,
    MouthTrack,
    Phone,
    align_decoder,
    align_phones,
    analyze_speech,
    decode_phones,
    speech_envelope,
    viseme_for,
    voice_activity,
)
from lipsync.speech import phones as phones_module
from lipsync.speech.features import frame_features, hop_voice_activity, resample, to_mono
from lipsync.speech.phones import _pcm16
from lipsync.speech.track import _bilabial_closures

FPS = 25
BOB = "Bob bought a map. Mom made pasta, maybe."
ARPABET = set(VISEMES)


def _load(path) -> tuple[np.ndarray, int]:
    audio, sr = sf.read(str(path), dtype="float32")
    return audio, sr


def _n_frames(audio: np.ndarray, sr: int) -> int:
    return int(np.ceil(audio.size / sr * FPS))


@pytest.fixture(scope="module")
def bob(media_dir) -> tuple[np.ndarray, int]:
    return _load(make_speech(media_dir / "bob.wav", BOB))


@pytest.fixture(scope="module")
def with_silences(media_dir):
    """Two clips joined by 0.6 s of digital silence, then 0.4 s more; returns the silent spans."""
    a, sr = _load(make_speech(media_dir / "part1.wav", "Hello there, my friend."))
    b, _ = _load(make_speech(media_dir / "part2.wav", "How are you doing today?"))
    gap1, gap2 = np.zeros(int(0.6 * sr), np.float32), np.zeros(int(0.4 * sr), np.float32)
    audio = np.concatenate([a, gap1, b, gap2, a])
    spans = [(a.size / sr, (a.size + gap1.size) / sr), ((a.size + gap1.size + b.size) / sr, (a.size + gap1.size + b.size + gap2.size) / sr)]
    return audio, sr, spans


def _inside(span: tuple[float, float], n: int) -> np.ndarray:
    """Frames lying entirely inside a time span (seconds), one frame of slack each side."""
    first, last = int(np.ceil(span[0] * FPS)) + 1, int(np.floor(span[1] * FPS)) - 1
    return np.arange(first, min(last, n))


def test_envelope_and_vad_follow_inserted_silences(with_silences):
    audio, sr, spans = with_silences
    n = _n_frames(audio, sr)
    env = speech_envelope(audio, sr, n, FPS)
    vad = voice_activity(audio, sr, n, FPS)
    assert env.shape == (n,) and vad.shape == (n,) and vad.dtype == bool
    assert env.min() >= 0 and env.max() == pytest.approx(1.0)
    for span in spans:
        idx = _inside(span, n)
        assert idx.size >= 4
        assert not vad[idx].any()
        assert env[idx].max() < 0.05
    assert vad.mean() > 0.6  # the three clips are mostly speech
    assert env[vad].mean() > 0.5


def test_vad_survives_white_noise_at_20_db_snr(with_silences):
    audio, sr, spans = with_silences
    n = _n_frames(audio, sr)
    clean = voice_activity(audio, sr, n, FPS)
    active_rms = np.sqrt(np.mean(audio[np.abs(audio) > 1e-4] ** 2))
    noisy = audio + np.random.default_rng(1).normal(0, active_rms / 10, audio.size).astype(np.float32)
    vad = voice_activity(noisy, sr, n, FPS)
    for span in spans:
        assert not vad[_inside(span, n)].any()
    assert (vad & clean).sum() >= 0.85 * clean.sum()
    env = speech_envelope(noisy, sr, n, FPS)
    assert env[_inside(spans[0], n)].max() < 0.15  # the noise floor maps to ~0


@pytest.mark.parametrize("kind", ["silence", "white_noise", "loud_white_noise"])
def test_no_speech_found(kind):
    sr = 16000
    level = {"silence": 0.0, "white_noise": 0.003, "loud_white_noise": 0.2}[kind]
    audio = np.random.default_rng(0).normal(0, level, 2 * sr).astype(np.float32)
    assert not voice_activity(audio, sr, 50).any()
    with pytest.raises(InputError, match="^left_audio: no speech found$"):
        analyze_speech(audio, sr, 50, field="left_audio")


def test_decode_phones_finds_bilabials(media_dir):
    audio, sr = _load(make_speech(media_dir / "bob_map.wav", "Bob bought a map, maybe"))
    phones = decode_phones(resample(audio, sr, 16000))
    assert len(phones) >= 8
    assert all(isinstance(p, Phone) and p.label in ARPABET for p in phones)
    assert all(0 <= p.start < p.end <= audio.size / sr + 0.05 for p in phones)
    assert all(a.start <= b.start for a, b in zip(phones, phones[1:]))
    assert {"P", "B", "M"} & {p.label for p in phones}  # labels are noisy; some bilabial shows up


def test_align_phones_covers_the_words(bob):
    audio, sr = bob
    a16 = resample(audio, sr, 16000)
    decoder = align_decoder()
    phones = align_phones(a16, BOB, decoder=decoder)
    assert phones is not None
    spoken = [p for p in phones if p.label != "SIL"]
    assert [p.label for p in spoken[:2]] == ["B", "AA"]
    assert [p.label for p in spoken[-2:]] == ["B", "IY"]  # "... maybe"
    assert spoken[0].start < 0.2 and spoken[-1].end > audio.size / sr - 0.6
    assert sum(p.label in ("P", "B", "M") for p in spoken) >= 10
    # The long pause after "map." is silence in the alignment.
    assert any(p.label == "SIL" and p.end - p.start > 0.3 for p in phones)
    # Reusing the decoder gives the same answer; nonsense / partly unknown text is handled.
    assert align_phones(a16, BOB, decoder=decoder) == phones
    assert align_phones(a16, "blorfzz quuxly snarfle", decoder=decoder) is None
    assert align_phones(a16, "", decoder=decoder) is None
    partly = align_phones(a16, BOB + " zqxj", decoder=decoder)  # 1 unknown word of 9 is skipped
    assert partly is not None and sum(p.label in ("P", "B", "M") for p in partly) >= 10


def test_track_open_follows_envelope(bob):
    audio, sr = bob
    n = _n_frames(audio, sr)
    env = speech_envelope(audio, sr, n, FPS)
    for kwargs, min_r in [({}, 0.8), ({"transcript": BOB}, 0.8), ({"use_phones": False}, 0.95)]:
        track = analyze_speech(audio, sr, n, FPS, **kwargs)
        assert isinstance(track, MouthTrack) and len(track) == n and track.fps == FPS
        for arr in (track.open, track.width, track.closure, track.labiodental):
            assert arr.shape == (n,) and arr.dtype == np.float32
        assert track.open.min() >= 0 and track.open.max() <= 1 and np.abs(track.width).max() <= 1
        assert np.corrcoef(track.open, env)[0, 1] >= min_r, kwargs
    assert track.source == "acoustic" and track.phones == []


def test_track_closes_on_silence(with_silences):
    audio, sr, spans = with_silences
    n = _n_frames(audio, sr)
    track = analyze_speech(audio, sr, n, FPS, use_phones=False)
    for span in spans:
        idx = _inside(span, n)
        assert track.open[idx].max() < 0.02 and track.closure[idx].min() > 0.95
    # Closed within two frames of every speech end.
    ends = np.flatnonzero(track.speech[:-1] & ~track.speech[1:]) + 1
    assert ends.size >= 2
    for end in ends:
        if end + 2 < n and not track.speech[end : end + 3].any():
            assert track.closure[end + 1] > 0.9 and track.open[end + 1] < 0.05


def test_track_same_at_any_sample_rate(bob):
    audio, sr = bob
    n = _n_frames(audio, sr)
    ref = analyze_speech(audio, sr, n, FPS, use_phones=False)
    ref_phones = analyze_speech(audio, sr, n, FPS)
    for rate in (8000, 44100, 48000):
        x = resample(audio, sr, rate)
        track = analyze_speech(x, rate, n, FPS, use_phones=False)
        assert np.corrcoef(track.open, ref.open)[0, 1] > 0.98, rate
        assert np.abs(track.open - ref.open).mean() < 0.03, rate
        assert (track.speech == ref.speech).mean() > 0.97, rate
        with_phones = analyze_speech(x, rate, n, FPS)
        assert np.corrcoef(with_phones.open, ref_phones.open)[0, 1] > 0.85, rate


def test_track_closes_lips_on_aligned_bilabials(bob):
    audio, sr = bob
    n = _n_frames(audio, sr)
    track = analyze_speech(audio, sr, n, FPS, transcript=BOB)
    assert track.source == "phones+acoustic"
    bilabials = [p for p in track.phones if p.label in ("P", "B", "M")]
    assert len(bilabials) >= 10
    closed = [track.closure[max(int(p.start * FPS) - 1, 0) : int(np.ceil(p.end * FPS)) + 1].max() >= 0.9 for p in bilabials]
    assert np.mean(closed) >= 0.8
    assert track.open[track.closure >= 0.99].max() < 0.01  # pressed lips are not open
    # Open vowels between closures really open: "Bob" / "map" / "Mom".
    assert track.open[track.speech & (track.closure == 0)].max() > 0.8


def test_nonsense_transcript_falls_back_to_decoding(bob):
    audio, sr = bob
    n = _n_frames(audio, sr)
    track = analyze_speech(audio, sr, n, FPS, transcript="blorfzz quuxly snarfle")
    assert track.source == "phones+acoustic" and track.phones
    assert track.phones == decode_phones(resample(audio, sr, 16000))


def test_bilabial_label_inside_steady_vowel_is_rejected():
    # A buzzy 130 Hz source stands in for a held vowel; a bilabial label in its middle has no
    # acoustic support unless the signal actually drops out there.
    sr = 16000
    t = np.arange(int(1.2 * sr)) / sr
    pad = np.zeros(int(0.4 * sr), np.float32)  # silence around it, so the VAD has a floor
    vowel = np.concatenate([pad, (0.2 * ((t * 130) % 1.0 - 0.5)).astype(np.float32), pad])
    labels = [Phone("AA", 0.4, 0.95), Phone("M", 0.95, 1.05), Phone("AA", 1.05, 1.6)]
    n = int(2.0 * FPS)

    def closures(audio):
        feats = frame_features(audio, sr)
        return _bilabial_closures(labels, feats, hop_voice_activity(feats), n, FPS, "decoded")

    closure, accepted, rejected = closures(vowel)
    assert (accepted, rejected) == (0, 1) and closure.max() == 0
    gapped = vowel.copy()
    gapped[int(0.97 * sr) : int(1.04 * sr)] *= 0.01  # lips shut: the sound drops out
    closure, accepted, rejected = closures(gapped)
    assert (accepted, rejected) == (1, 0)
    assert closure[int(0.97 * FPS) : int(1.04 * FPS) + 1].max() == 1.0
    assert closure[: int(0.9 * FPS)].max() == 0 and closure[int(1.1 * FPS) :].max() == 0


def test_width_spread_versus_rounded(media_dir):
    audio, sr = _load(make_speech(media_dir / "width.wav", "see me, please. [[_:400]] who knew you too."))
    n = _n_frames(audio, sr)
    for use_phones in (False, True):
        track = analyze_speech(audio, sr, n, FPS, use_phones=use_phones)
        quiet = ~track.speech
        # The 0.4 s pause between the phrases: the first run of 8 silent frames.
        split = next(i for i in range(5, n - 8) if quiet[i : i + 8].all())
        spread, rounded = track.width[:split][track.speech[:split]], track.width[split:][track.speech[split:]]
        assert spread.mean() > 0.1 > -0.1 > rounded.mean(), use_phones


def test_other_language_uses_acoustic_path(media_dir):
    audio, sr = _load(make_speech(media_dir / "de.wav", "Guten Morgen, wie geht es Ihnen heute?", voice="de"))
    n = _n_frames(audio, sr)
    track = analyze_speech(audio, sr, n, FPS, language="de", transcript="Guten Morgen, wie geht es Ihnen heute?")
    assert track.source == "acoustic" and track.phones == []
    assert track.speech.mean() > 0.6
    assert np.corrcoef(track.open, speech_envelope(audio, sr, n, FPS))[0, 1] > 0.95


def test_input_shapes_and_lengths(bob):
    audio, sr = bob
    n = _n_frames(audio, sr)
    mono = analyze_speech(audio, sr, n, FPS, use_phones=False)
    stereo = analyze_speech(np.stack([audio, audio], axis=1), sr, n, FPS, use_phones=False)
    pcm = analyze_speech((audio * 32767).astype(np.int16), sr, n, FPS, use_phones=False)
    assert np.allclose(stereo.open, mono.open, atol=1e-4) and np.allclose(pcm.open, mono.open, atol=1e-3)
    # A video longer than the audio: the extra frames are silent and closed.
    long = analyze_speech(audio, sr, n + 20, FPS, use_phones=False)
    assert len(long) == n + 20 and not long.speech[n:].any() and long.open[n + 2 :].max() == 0
    # Another frame rate.
    assert len(analyze_speech(audio, sr, 2 * n, 2 * FPS, use_phones=False)) == 2 * n
    with pytest.raises(InputError, match="audio: is empty"):
        analyze_speech(np.zeros(0, np.float32), sr, 10)


def test_viseme_table():
    assert viseme_for("aa1") == VISEMES["AA"]
    assert all(VISEMES[p].closure == 1 and VISEMES[p].open == 0 for p in ("P", "B", "M"))
    assert VISEMES["F"].labiodental and VISEMES["V"].labiodental and not VISEMES["AA"].labiodental
    assert VISEMES["UW"].width < 0 < VISEMES["IY"].width
    assert VISEMES["AA"].open == max(v.open for v in VISEMES.values())
    assert viseme_for("XYZ").closure == 0  # unknown labels are a neutral shape


def test_labiodental_on_aligned_f_and_v(media_dir):
    text = "five very fine fish"
    audio, sr = _load(make_speech(media_dir / "fv.wav", text))
    n = _n_frames(audio, sr)
    track = analyze_speech(audio, sr, n, FPS, transcript=text)
    fv = [p for p in track.phones if p.label in ("F", "V")]
    assert len(fv) >= 4
    for p in fv:
        assert track.labiodental[int(p.start * FPS) : int(np.ceil(p.end * FPS)) + 1].max() > 0.5, p
    assert analyze_speech(audio, sr, n, FPS, use_phones=False).labiodental.max() == 0


# -- long audio: bounded memory, utterance-sized pieces for pocketsphinx --------------------------


def test_to_mono_does_not_copy_clean_audio():
    x = np.linspace(-1, 1, 1000, dtype=np.float32)
    assert to_mono(x) is x
    dirty = x.copy()
    dirty[[3, 7]] = [np.nan, np.inf]
    clean = to_mono(dirty)
    assert np.isfinite(clean).all() and np.isnan(dirty[3]) and clean[3] == 0  # the caller's array is left alone


def test_features_memory_does_not_grow_with_length():
    """Envelope and hop features of 2 minutes peak about as high as of 10 s: no full-length temporaries."""
    rng = np.random.default_rng(8)
    short, long = ((rng.standard_normal(s * 16000) * 0.1).astype(np.float32) for s in (10, 120))
    growth = long.nbytes - short.nbytes  # 7 MB; before streaming, the envelope alone grew by ~7x that
    for run in (lambda x: speech_envelope(x, 16000, x.size // 640, FPS), lambda x: frame_features(x, 16000)):
        # What does grow: 5 float32 features per 10 ms hop (0.2 MB for 2 minutes).
        assert traced_peak(lambda: run(long)) - traced_peak(lambda: run(short)) < 0.3 * growth


def test_pcm16_in_pieces_equals_whole(bob):
    a16 = resample(bob[0], bob[1], 16000)
    rng = np.random.default_rng(0)
    pieces = np.concatenate([_pcm16(a16[:12345], rng), _pcm16(a16[12345:], rng)])
    whole = _pcm16(a16)
    assert whole.dtype == np.dtype("<i2") and np.array_equal(pieces, whole)
    ints = np.round(a16 * 32767).astype(np.int16)  # integer PCM is scaled to -1..1 first
    assert np.array_equal(_pcm16(ints), _pcm16(ints / 32767.0))


def test_long_audio_is_decoded_in_pieces_cut_at_pauses(with_silences, monkeypatch):
    audio, sr, _ = with_silences
    a16 = resample(audio, sr, 16000)
    whole = decode_phones(a16)
    # Phrases of ~2 s between pauses: pieces of at most 2.5 s can all be cut in silence.
    longest = int(2.5 * 16000)
    pieces = phones_module._segments(a16, longest)
    assert pieces[0][0] == 0 and pieces[-1][1] == a16.size and len(pieces) >= 2
    assert all(b - a <= longest and a % 160 == 0 for a, b in pieces)
    assert all(a == b for (_, a), (b, _) in zip(pieces, pieces[1:]))
    rms = np.sqrt(np.mean(a16.astype(np.float64) ** 2))
    for cut, _ in pieces[1:]:
        around = a16[cut - 800 : cut + 800].astype(np.float64)  # 100 ms
        assert np.sqrt(np.mean(around**2)) < 0.01 * rms, cut / 16000
    monkeypatch.setattr(phones_module, "_SEGMENT_S", 2.5)
    split = decode_phones(a16)
    assert all(a.end <= b.start + 1e-9 for a, b in zip(split, split[1:]))  # in order, offsets applied
    assert split[-1].end <= a16.size / 16000 + 0.05
    spoken = lambda ps: [p.label for p in ps if p.label != "SIL"]  # noqa: E731
    # Cut in silence, the speech decodes much as it did in one piece.
    import difflib

    assert difflib.SequenceMatcher(None, spoken(whole), spoken(split)).ratio() > 0.8


def test_long_transcript_is_aligned_in_pieces(bob, monkeypatch):
    audio, sr = bob
    a16 = resample(audio, sr, 16000)
    whole = align_phones(a16, BOB)
    monkeypatch.setattr(phones_module, "_SEGMENT_S", 1.5)  # ~3.5 s of speech: 3 or more pieces
    split = align_phones(a16, BOB)
    assert split is not None
    assert all(a.end <= b.start + 1e-9 for a, b in zip(split, split[1:]))
    spoken = lambda ps: [p.label for p in ps if p.label != "SIL"]  # noqa: E731
    assert spoken(split) == spoken(whole)  # every word aligned, in order, none lost at a cut
    starts = np.array([p.start for p in split if p.label != "SIL"]) - np.array([p.start for p in whole if p.label != "SIL"])
    assert np.median(np.abs(starts)) <= 0.03
    assert align_phones(a16, "blorfzz quuxly snarfle") is None
