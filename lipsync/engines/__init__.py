"""Engine registry, and the one check of a request against an engine (used by the pipeline, CLI, UI and
REST API alike). Engines are modules (see `base`); they are imported only when asked for."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Callable, Optional, Union

from ..errors import EngineError, InputError
from .base import Availability, EngineSpec, Progress

if TYPE_CHECKING:
    from ..requests import Request

# name → module path. Neural engines register here too; importing them must stay cheap.
KNOWN_ENGINES = {
    "builtin": "lipsync.engines.builtin",
    "musetalk": "lipsync.engines.musetalk",
}
DEFAULT_ENGINE = "builtin"

# Request fields per option an engine declares in `SPEC.options` (a set field needs the option).
OPTION_FIELDS = {
    "prompt": ("prompt",),
    "seed": ("seed",),
    "mask_image": ("mask_image",),
    "transcript": ("transcript", "left_transcript", "right_transcript"),
}


def get_engine(name: str | None) -> ModuleType:
    name = name or DEFAULT_ENGINE
    if name not in KNOWN_ENGINES:
        raise EngineError(f"engine: unknown engine {name!r}; available: {', '.join(KNOWN_ENGINES)}")
    return importlib.import_module(KNOWN_ENGINES[name])


def list_engines() -> list[ModuleType]:
    return [get_engine(name) for name in KNOWN_ENGINES]


def check_options(spec: EngineSpec, request: "Request") -> None:
    """What the engine declares it supports, against the request: its job kind, resolution and options.
    Cheap (no engine is loaded): the REST API calls it at submission, the pipeline before rendering."""
    if request.model not in spec.modes:
        raise EngineError(f"engine: {spec.name} cannot render {request.model}")
    if request.resolution not in spec.resolutions:
        raise InputError("resolution", f"{spec.name} supports {', '.join(spec.resolutions)}")
    for option, fields in OPTION_FIELDS.items():
        for name in fields:
            if getattr(request, name, None) is not None and not spec.supports(option):
                raise InputError(name, f"not supported by the {spec.name} engine")


def check_request(spec_or_engine: Union[EngineSpec, ModuleType], request: "Request", *,
                  allow_download: bool = False, progress: Optional[Progress] = None) -> None:
    """Raise if `request` cannot run on the engine: a mode, resolution or option it does not declare
    (InputError naming the field, or EngineError), or an engine that is unavailable here, or needs a
    download the user did not allow. With `allow_download`, a missing download happens here first."""
    engine = get_engine(spec_or_engine.name) if isinstance(spec_or_engine, EngineSpec) else spec_or_engine
    spec = engine.SPEC
    check_options(spec, request)
    available = engine.availability()
    if available.state == "download" and allow_download:
        download(engine, progress)
        available = engine.availability()
    if available.state == "download":
        raise EngineError(offline_message(spec, available))
    if available.state != "ready":
        raise EngineError(f"engine: {spec.name} is not available: {available.reason}")


def download(engine: ModuleType, progress: Optional[Progress] = None) -> None:
    """Fetch every file the engine declares into the hub cache, as `lipsync models download` does (free-disk
    check, pinned commit, recorded hashes; progress stage "download", 0..1 over the bytes). A failure
    (offline, no such file, disk full) is an EngineError saying what to run later."""
    from ..models import manager

    spec, report = engine.SPEC, progress or (lambda fraction, stage: None)
    report(0.0, "download")
    try:
        manager.download(spec.weights, progress=report, engine=spec.name)
    except EngineError as exc:
        raise EngineError(f"engine: download failed: {exc}") from None
    report(1.0, "download")


def offline_message(spec: EngineSpec, available: Availability) -> str:
    """One line: what is missing, the command that fetches it, and that the built-in engine needs none."""
    files = ", ".join(available.missing) or ", ".join(r.repo_id for r in spec.weights) or available.reason
    size = f" ({human_size(available.download_bytes)})" if available.download_bytes else ""
    return (f"engine: {spec.name} needs a download: {files}{size}; run `lipsync models download {spec.name}` "
            f"with network access (the {DEFAULT_ENGINE} engine works offline)")


SLOW_FRAME = 0.2  # seconds a frame: slower than 5 frames/s is worth saying before a job starts


def speed_note(engine: ModuleType, seconds: Callable[[], Optional[float]]) -> Optional[str]:
    """One line for the user before a job starts when the engine is slow here (MuseTalk on a CPU): how
    long this job will take, from the measured seconds per frame. `seconds` gives the job's output length
    and is only called then (it probes media)."""
    from ..config import FPS

    cost = engine.frame_cost()
    if cost is None or cost.seconds < SLOW_FRAME:
        return None
    length = seconds()
    if not length:
        return None
    frames = max(1, round(length * FPS))
    where = "measured on this computer" if cost.measured else \
        "our benchmark's figure for a 2-core CPU, until this computer's first job measures its own"
    return (f"{engine.SPEC.name} runs on the {cost.device.upper()} here, which is slow: {frames} frames at "
            f"{cost.seconds:.1f} s a frame ({where}) take about {human_duration(frames * cost.seconds)}. "
            f"A GPU, or the {DEFAULT_ENGINE} engine, is much faster")


def human_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def licences(spec: EngineSpec) -> str:
    """"code Apache-2.0" plus each weight repo's licence as its model card states it."""
    weights = "; ".join(f"{repo.repo_id} {repo.licence}" for repo in spec.weights)
    return f"code {spec.code_licence}" + (f"; weights: {weights}" if weights else "")


def human_size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
