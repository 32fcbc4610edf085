"""What every engine offers. Like FaceFusion's processors, an engine is a module with the same small
set of names; it declares what it supports so the UI can disable what it would otherwise ignore.

An engine module provides:

    SPEC: EngineSpec
    def availability() -> Availability            # can it run here, and if not, why
    def load(progress: Progress | None) -> object  # weights, graphs; may download (neural engines)
    def parse_prompt(prompt: str | None) -> tuple[object, list[str]]   # (style, words not understood)
    def renderer(model: object, plan: RenderPlan) -> Renderer
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Literal, Optional, Protocol

import numpy as np

from .. import config
from ..models.spec import WeightRepo

if TYPE_CHECKING:  # engines are handed these; importing them here would load mediapipe/pocketsphinx
    from ..face import Face
    from ..speech import MouthTrack

# (fraction 0..1, stage name) → None; stages: decode, analysis, render, encode.
Progress = Callable[[float, str], None]

MODES = ("lipsync-video", "lipsync-image", "lipsync-image-multi")
OPTIONS = ("resolution", "seed", "prompt", "mask_image", "transcript")


@dataclass(frozen=True)
class EngineSpec:
    name: str
    title: str
    description: str
    modes: frozenset[str]
    options: frozenset[str]
    resolutions: tuple[str, ...] = ("480p", "720p")
    prompt_words: tuple[str, ...] = ()
    # Weights from the Hugging Face Hub (none for the built-in engine), and the licence of the engine's code.
    weights: tuple[WeightRepo, ...] = ()
    code_licence: str = "Apache-2.0"
    hardware: str = "any CPU"
    # Frames the pipeline hands the renderer at once, and whether it may call it from several threads.
    batch_size: int = 1
    parallel: bool = False

    @property
    def needs_download(self) -> bool:
        return bool(self.weights)

    def supports(self, option: str) -> bool:
        return option in self.options


AvailabilityState = Literal["ready", "download", "unavailable"]


@dataclass(frozen=True)
class Availability:
    """Can the engine run here: ready; needs a download (what, how big); or unavailable (why)."""

    state: AvailabilityState
    reason: str = ""  # why unavailable, or what the download is, in one line
    missing: tuple[str, ...] = ()  # "repo_id/path" of each file still to download
    download_bytes: int = 0

    @property
    def ok(self) -> bool:
        return self.state == "ready"


@dataclass
class Speaker:
    """One face that speaks: its mouth follows `track`. `face` is known up front for stills."""

    track: "MouthTrack"
    face: Optional["Face"] = None
    role: str = "speaker"  # "left", "right" or "speaker"


@dataclass
class RenderPlan:
    """Everything an engine needs to render a job, decided by the pipeline."""

    model: str
    size: tuple[int, int]  # output (w, h)
    fps: int
    n_frames: int
    speakers: list[Speaker]
    seed: int
    style: object = None
    mask: Optional[np.ndarray] = None  # (h, w) float32 0..1, 1 = may change
    audio: Optional[np.ndarray] = None  # the output timeline's speech, mono float32 at `sample_rate` (for neural engines)
    sample_rate: int = config.AUDIO_RATE
    extra: dict = field(default_factory=dict)


class Renderer(Protocol):
    def render(self, frame: np.ndarray, index: int, faces: list[Optional["Face"]]) -> np.ndarray:
        """Return output frame `index` (RGB uint8, plan.size) from the source frame and each speaker's
        face in it (None where the face is not visible: pass the frame through)."""
        ...
