"""What every engine offers. Like FaceFusion's processors, an engine is a module with the same small
set of names; it declares what it supports so the UI can disable what it would otherwise ignore.

An engine module provides:

    SPEC: EngineSpec
    def availability() -> Availability   # ready / needs a download (what, how big) / unavailable (why)
    def load(progress: Progress | None, *, allow_download: bool) -> object   # weights, graphs
    def parse_prompt(prompt: str | None) -> tuple[object, list[str]]   # (style, words not understood)
    def renderer(model: object, plan: RenderPlan) -> Renderer

`lipsync.engines.check_request` checks a request against SPEC and availability (downloading first when
the user allows it); the pipeline then loads the engine once and hands its renderer frames in batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Literal, Optional, Protocol

import numpy as np

from .. import config, kinds
from ..models.spec import WeightRepo

if TYPE_CHECKING:  # engines are handed these; importing them here would load mediapipe/pocketsphinx
    from ..face import Face
    from ..speech import MouthTrack

# (fraction 0..1, stage name) → None; stages: download (its own 0..1), decode, analysis, render, encode.
Progress = Callable[[float, str], None]

MODES = kinds.NAMES
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
    # Frames the pipeline hands `render_batch` at once (memory is bounded by a few batches), and whether
    # it may call `render_batch` from several threads at once. Only a still's frames are independent of
    # each other, so a parallel engine gets two threads there; a video's batches always arrive in order
    # on one thread (face tracks, smoothing and colour sampling carry over from frame to frame).
    batch_size: int = 1
    parallel: bool = False

    @property
    def needs_download(self) -> bool:
        return bool(self.weights)

    def supports(self, option: str) -> bool:
        return option in self.options


@dataclass(frozen=True)
class FrameCost:
    """What one output frame costs an engine on this computer (an engine's `frame_cost()`; None: fast)."""

    seconds: float
    device: str  # "cpu", "cuda", "mps"
    measured: bool  # on this computer (else a benchmark's figure)


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
    """One face that speaks: its mouth follows `track`. `face` is known up front for stills.

    `audio` is this speaker's own line on the output timeline (mono float32 at `RenderPlan.sample_rate`,
    silent where another speaker talks), so a neural engine hears each speaker apart, not the mix."""

    track: "MouthTrack"
    face: Optional["Face"] = None
    role: str = "speaker"  # "left", "right" or "speaker"
    audio: Optional[np.ndarray] = None


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


@dataclass
class FrameBatch:
    """Consecutive source frames `start, start + 1, ...` on the output timeline, with each speaker's face
    in each frame (`faces[i][k]`: speaker k in frame i; None where it is not visible). A still's frames
    are all the same array: never write into them."""

    start: int
    frames: list[np.ndarray]
    faces: list[list[Optional["Face"]]]

    def __len__(self) -> int:
        return len(self.frames)


class Renderer(Protocol):
    def render(self, frame: np.ndarray, index: int, faces: list[Optional["Face"]]) -> np.ndarray:
        """Return output frame `index` (RGB uint8, plan.size) from the source frame and each speaker's
        face in it (None where the face is not visible: pass the frame through)."""
        ...

    def render_batch(self, batch: FrameBatch) -> list[np.ndarray]:
        """The output frames for `batch`, in order (what the pipeline calls)."""
        ...
