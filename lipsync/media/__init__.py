"""Media in and out: fetch inputs, probe them, decode audio/frames, write the result MP4.

Most names load on first use (PEP 562), so that a caller needing only `media.fetch` (the REST server,
at start-up) does not pay for OpenCV and the writer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

# `probe` is both a submodule and a function, so it cannot be lazy (see lipsync.lazy): imported here.
from .probe import MediaInfo, expect_kind, probe

_EXPORTS = {
    "arrange_dialogue": "audio",
    "integrated_loudness": "audio",
    "load_audio": "audio",
    "loudness_normalize": "audio",
    "write_wav": "audio",
    "resolve": "fetch",
    "VideoSource": "video",
    "output_size": "video",
    "read_image": "video",
    "VideoWriter": "writer",
}

if TYPE_CHECKING:
    from .audio import arrange_dialogue, integrated_loudness, load_audio, loudness_normalize, write_wav
    from .fetch import resolve
    from .video import VideoSource, output_size, read_image
    from .writer import VideoWriter


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


__all__ = sorted([*_EXPORTS, "MediaInfo", "expect_kind", "probe"])
