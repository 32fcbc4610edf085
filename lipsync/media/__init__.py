"""Media in and out: fetch inputs, probe them, decode audio/frames, write the result MP4."""

from .audio import arrange_dialogue, integrated_loudness, load_audio, loudness_normalize, write_wav
from .fetch import resolve
from .probe import MediaInfo, expect_kind, probe
from .video import VideoSource, output_size, read_image
from .writer import VideoWriter

__all__ = [
    "MediaInfo",
    "VideoSource",
    "VideoWriter",
    "arrange_dialogue",
    "expect_kind",
    "integrated_loudness",
    "load_audio",
    "loudness_normalize",
    "output_size",
    "probe",
    "read_image",
    "resolve",
    "write_wav",
]
