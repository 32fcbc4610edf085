"""The three job forms as plain dicts: which fields each tab has, checking them, turning them into requests,
their cost and the hosted API's ``formState``. Nothing here imports Gradio, so it is easy to test."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from .. import kinds, pricing
from ..errors import InputError
from ..requests import Request, parse_request
from .studio import Limits, uploads_dir

MODES = kinds.TABS
MODEL = {k.tab: k.name for k in kinds.KINDS}
MODE_OF = {k.name: k.tab for k in kinds.KINDS}
TITLES = {k.tab: k.title for k in kinds.KINDS}

_OPTIONS = ("resolution", "engine", "mask_image", "prompt", "seed")
FIELDS = {
    "video": ("video", "audio", *_OPTIONS, "transcript", "face_index", "length_mode", "keep_background", "compare"),
    "image": ("image", "audio", *_OPTIONS, "transcript", "face_index"),
    "dialogue": ("image", "left_audio", "right_audio", "order", *_OPTIONS, "left_transcript", "right_transcript",
                 "left_face", "right_face", "face_override"),
}
# Per tab: each media field and the kinds of file it takes (speech may come from a video's sound track).
MEDIA = {k.tab: {k.visual: (k.visual,), **{a: ("audio", "video") for a in k.audio_fields}} for k in kinds.KINDS}
AUDIO_FIELDS = {k.tab: k.audio_fields for k in kinds.KINDS}
# Engine options a form field depends on (EngineSpec.options names).
OPTION_OF = {"mask_image": "mask_image", "prompt": "prompt", "seed": "seed", "transcript": "transcript",
             "left_transcript": "transcript", "right_transcript": "transcript"}


def blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def as_int(value) -> Optional[int]:
    """Gradio numbers arrive as floats (or None); requests want ints."""
    if blank(value):
        return None
    number = float(value)
    if number != int(number):
        raise ValueError("must be a whole number")
    return int(number)


# -- where files may come from ---------------------------------------------------------------------

Roots = Optional[Sequence[Path]]  # folders a browser-sent file must be in; None: any (Python callers)


def check_source(path: str, field: str, roots: Roots) -> None:
    """Refuse a file that is not in `roots` (Gradio's upload cache, our examples). Says nothing about
    whether the file exists or what it is: the message is the same for every path outside."""
    if roots is None:
        return
    resolved = Path(path).resolve()
    if not any(resolved == r or r in resolved.parents for r in (Path(root).resolve() for root in roots)):
        raise InputError(field, "must be a file uploaded to this studio")


# -- durations and cost ----------------------------------------------------------------------------


def media_duration(path: str, field: str, allowed: tuple[str, ...]) -> Optional[float]:
    """Probe a file's duration (None for images); errors name ``field``. Nothing is decoded beyond the header."""
    from ..media.probe import expect_kind, probe

    info = probe(Path(path), field)
    expect_kind(info, field, allowed)
    return info.duration


@dataclass(frozen=True)
class CostQuote:
    estimate: Optional[pricing.Estimate]
    missing: tuple[str, ...] = ()  # fields still needed before there is a number


def quote(mode: str, form: dict, roots: Roots = None) -> CostQuote:
    """What the hosted API would charge for this form, from probed durations. Raises InputError for bad media."""
    resolution = form.get("resolution") or "480p"
    media = MEDIA[mode]
    durations: dict[str, Optional[float]] = {}
    for name in AUDIO_FIELDS[mode] + (("video",) if mode == "video" else ()):
        if not blank(form.get(name)):
            check_source(form[name], name, roots)
            durations[name] = media_duration(form[name], name, media[name])
    missing = tuple(name for name in AUDIO_FIELDS[mode] if name not in durations)
    if missing:
        return CostQuote(None, missing)
    if mode == "video":
        mode_name = form.get("length_mode") or kinds.DEFAULT_LENGTH_MODE
        if mode_name not in kinds.LENGTH_MODES:
            raise InputError("length_mode", f"{mode_name!r} is not allowed; expected one of {', '.join(kinds.LENGTH_MODES)}")
        est = pricing.estimate_video(durations["audio"], durations.get("video"), resolution, length_mode=mode_name)
    elif mode == "image":
        est = pricing.estimate_image(durations["audio"], resolution)
    else:
        est = pricing.estimate_multi(durations["left_audio"], durations["right_audio"],
                                     form.get("order") or "meanwhile", resolution)
    return CostQuote(est)


# -- checking a form -------------------------------------------------------------------------------


def check_form(mode: str, form: dict, limits: Limits, spec=None, roots: Roots = None) -> dict[str, str]:
    """Problems per field, before a job is queued: missing or unreadable media, files from outside
    `roots`, limits, options the chosen engine does not support. Empty when the form can be rendered."""
    problems: dict[str, str] = {}
    durations: dict[str, float] = {}
    for name, allowed in MEDIA[mode].items():
        if blank(form.get(name)):
            problems[name] = "is required"
            continue
        try:
            check_source(form[name], name, roots)
            seconds = media_duration(form[name], name, allowed)
        except InputError as exc:
            problems[name] = exc.problem
            continue
        if seconds is not None and name in AUDIO_FIELDS[mode]:
            durations[name] = seconds
    if not blank(form.get("mask_image")):
        try:
            check_source(form["mask_image"], "mask_image", roots)
            media_duration(form["mask_image"], "mask_image", ("image",))
        except InputError as exc:
            problems["mask_image"] = exc.problem
    if limits.max_seconds is not None and durations:
        order = form.get("order") or "meanwhile"
        total = max(durations.values()) if mode != "dialogue" or order == "meanwhile" else sum(durations.values())
        if total > limits.max_seconds:
            field = max(durations, key=durations.get)
            problems.setdefault(field, f"{total:.0f} s of output is over this app's limit of {limits.max_seconds:.0f} s")
    if form.get("resolution") == "720p" and not limits.allow_720p:
        problems["resolution"] = "720p is switched off on this app"
    for name in ("seed", "face_index", "left_face", "right_face"):
        try:
            value = as_int(form.get(name))
        except (TypeError, ValueError):
            problems[name] = "must be a whole number"
            continue
        if value is not None and value < 0:
            problems[name] = "must be 0 or more"
        elif name == "seed" and value is not None and value > 2**32 - 1:
            problems[name] = "must be below 2**32"
    if "length_mode" in FIELDS[mode] and (form.get("length_mode") or kinds.DEFAULT_LENGTH_MODE) not in kinds.LENGTH_MODES:
        problems["length_mode"] = f"expected one of {', '.join(kinds.LENGTH_MODES)}"
    if "keep_background" in FIELDS[mode] and not blank(form.get("keep_background")):
        try:
            level = float(form["keep_background"])
        except (TypeError, ValueError):
            level = float("nan")
        if not -60.0 <= level <= 12.0:
            problems["keep_background"] = "must be a number of dB from -60 to 12, e.g. -18"
    if spec is not None:
        if MODEL[mode] not in spec.modes:
            problems["engine"] = f"{spec.name} cannot render {TITLES[mode].lower()} jobs"
        if form.get("resolution") and form["resolution"] not in spec.resolutions:
            problems["resolution"] = f"{spec.name} supports {', '.join(spec.resolutions)}"
        for name, option in OPTION_OF.items():
            if name in FIELDS[mode] and not blank(form.get(name)) and not spec.supports(option):
                problems[name] = f"not supported by the {spec.name} engine; clear it or pick another engine"
    if mode == "dialogue" and form.get("face_override") and not {"left_face", "right_face"} & problems.keys():
        left, right = as_int(form.get("left_face")), as_int(form.get("right_face"))
        if left is not None and left == right:
            problems["right_face"] = "left and right must be different faces"
    return problems


# -- form → request --------------------------------------------------------------------------------


def persist_upload(path: str) -> str:
    """Copy an upload out of Gradio's temporary cache into LIPSYNC_HOME/uploads (named by content, so a
    file used twice is stored once); History re-opens jobs from there after a restart."""
    source = Path(path)
    home = uploads_dir().resolve()
    resolved = source.resolve()
    if home in resolved.parents:
        return str(resolved)
    digest = hashlib.sha256()
    with open(source, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    target = home / digest.hexdigest()[:16] / source.name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(source, tmp)
        tmp.replace(target)
    return str(target)


def to_request(mode: str, form: dict, *, persist: bool = True, roots: Roots = None) -> Request:
    """Build the request for a form; uploads are persisted first. Errors name the field."""
    state: dict = {}
    for name in FIELDS[mode]:
        value = form.get(name)
        if name == "face_override" or blank(value):
            continue
        if name in MEDIA[mode] or name == "mask_image":
            check_source(value, name, roots)
            state[name] = persist_upload(value) if persist else str(value)
        elif name in ("seed", "face_index", "left_face", "right_face"):
            if name in ("left_face", "right_face") and not form.get("face_override"):
                continue
            try:
                state[name] = as_int(value)
            except (TypeError, ValueError):
                raise InputError(name, "must be a whole number") from None
        elif name == "keep_background":
            try:  # a textbox, like the seed: empty drops the video's own audio
                state[name] = float(value)
            except (TypeError, ValueError):
                raise InputError(name, "must be a number of dB, e.g. -18") from None
        else:
            state[name] = value.strip() if isinstance(value, str) else value
    return parse_request(MODEL[mode], state)


def form_from_request(request: dict) -> tuple[str, dict]:
    """The tab and form values that reproduce a stored request (History's re-open)."""
    mode = MODE_OF.get(request.get("model", ""), "")
    if not mode:
        raise InputError("model", f"unknown job kind {request.get('model')!r}")
    form = {name: request.get(name) for name in FIELDS[mode] if name != "face_override"}
    if mode == "dialogue":
        form["face_override"] = request.get("left_face") is not None or request.get("right_face") is not None
    return mode, form

