"""Media in and out: fetch inputs, probe them, decode audio/frames, write the result MP4.

Most names load on first use (PEP 562), so that a caller needing only `media.fetch` (the REST server,
at start-up) does not pay for OpenCV and the writer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# `probe` is both a submodule and a function: once anything imports the submodule, Python binds the
# package attribute to the module and __getattr__ is never asked. Importing it here keeps the function.
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


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = sorted([*_EXPORTS, "MediaInfo", "expect_kind", "probe"])
