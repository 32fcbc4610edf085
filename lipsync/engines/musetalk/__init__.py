"""MuseTalk 1.5 (TMElyralab; code MIT, weights creativeml-openrail-m): a UNet that repaints the lower half of
a 256x256 face crop in one pass, conditioned on whisper-tiny audio states. See ../shared/musetalk/FACTS.md.

Importing this package is cheap: torch, diffusers and transformers load with `load_pipeline`.
"""

from __future__ import annotations

from ...lazy import lazy_exports
from .geometry import crop_box, crop_face, expand_box, lower_face_mask, paste_back
from .weights import WEIGHTS

__getattr__, __dir__ = lazy_exports(__name__, {"load_pipeline": "model", "MuseTalkPipeline": "model"})

__all__ = ["WEIGHTS", "load_pipeline", "MuseTalkPipeline", "crop_box", "crop_face", "expand_box",
           "lower_face_mask", "paste_back"]
