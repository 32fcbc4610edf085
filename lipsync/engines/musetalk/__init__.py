"""MuseTalk 1.5 (TMElyralab; code MIT, weights creativeml-openrail-m): a UNet that repaints the lower half of
a 256x256 face crop in one pass, conditioned on whisper-tiny audio states. See ../shared/musetalk/FACTS.md.

The package is the engine module (`engine`: SPEC, availability, load, parse_prompt, renderer) and the
tensor pipeline's seams (`model`). Importing it is cheap: torch, diffusers and transformers load with
`load` / `load_pipeline`.
"""

from __future__ import annotations

from ...lazy import lazy_exports
from .engine import SPEC, availability, frame_cost, load, parse_prompt, renderer
from .geometry import crop_box, crop_face, expand_box, lower_face_mask, paste_back
from .weights import WEIGHTS

__getattr__, __dir__ = lazy_exports(__name__, {"load_pipeline": "model", "MuseTalkPipeline": "model"})

__all__ = ["SPEC", "availability", "frame_cost", "load", "parse_prompt", "renderer", "WEIGHTS", "load_pipeline",
           "MuseTalkPipeline", "crop_box", "crop_face", "expand_box", "lower_face_mask", "paste_back"]
