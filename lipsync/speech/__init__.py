"""Speech -> mouth motion: loudness envelope, voice activity, phone timings, visemes, mouth track."""

from .features import speech_envelope, voice_activity
from .phones import Phone, align_decoder, align_phones, decode_phones, phone_decoder
from .track import MouthTrack, analyze_speech
from .visemes import VISEMES, Viseme, viseme_for

__all__ = [
    "MouthTrack",
    "Phone",
    "VISEMES",
    "Viseme",
    "align_decoder",
    "align_phones",
    "analyze_speech",
    "decode_phones",
    "phone_decoder",
    "speech_envelope",
    "viseme_for",
    "voice_activity",
]
