"""What the studio's buttons and inputs do, as plain functions of plain values (paths, strings, numbers).

`layout.py` wires them to components. Errors a user can act on come back as text or `gr.Error`, never as
a traceback; the heavy modules (pipeline, face models) are imported on first use so the app starts fast.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Optional

from .. import config, kinds
from ..engines import DEFAULT_ENGINE
from ..errors import Cancelled, InputError, LipsyncError, NotAllowed
from . import forms
from .access import OWNER, Viewer
from .forms import FIELDS, MODEL, TITLES, Roots, blank
from .studio import Studio

log = logging.getLogger(__name__)

STAGE_LABELS = {
    "download": "Downloading the engine's weights (once)",
    "decode": "Reading media",
    "analysis": "Analysing audio, finding faces",
    "render": "Rendering",
    "encode": "Encoding",
}
VIDEO_STAGE_LABELS = {**STAGE_LABELS, "render": "Tracking faces and rendering"}

# -- live cost -------------------------------------------------------------------------------------


def cost_text(mode: str, form: dict, roots: Roots = None) -> str:
    """The hosted price of this form with the rule that applied, as Markdown; a hint while media is missing."""
    try:
        q = forms.quote(mode, form, roots)
    except InputError as exc:
        return f"⚠ **{exc.field}**: {exc.problem}"
    except ValueError as exc:  # a bad order or resolution value
        return f"⚠ {exc}"
    if q.estimate is None:
        need = " and ".join(name.replace("_", " ") for name in q.missing)
        return f"**Hosted API cost:** add the {need} to see the estimate. Rendering here is free."
    est = q.estimate
    return (f"**Hosted API cost: {est.credits} credits** — {est.rule}."
            f"<br><small>Estimated from the probed durations; rendering on this computer is free.</small>")


# -- engines ---------------------------------------------------------------------------------------


def engine_choices() -> list[tuple[str, str]]:
    """(label, name) of engines that can run here or be downloaded; the built-in one always can."""
    from ..engines import KNOWN_ENGINES, get_engine

    choices = []
    for name in KNOWN_ENGINES:
        try:
            engine = get_engine(name)
            available = engine.availability()
        except Exception as exc:  # noqa: BLE001 - a broken optional engine must not take the studio down
            log.warning("engine %s unavailable: %s", name, exc)
            continue
        if available.ok:
            choices.append((engine.SPEC.title, name))
        elif available.state == "download":
            choices.append((f"{engine.SPEC.title} (downloads on first use)", name))
    return choices


def engine_spec(name: Optional[str]):
    from ..engines import get_engine

    return get_engine(name or DEFAULT_ENGINE).SPEC


def engine_support(mode: str, engine: Optional[str]) -> dict[str, Optional[str]]:
    """Per form field: None if the engine supports it, else why it is disabled; plus the resolutions."""
    spec = engine_spec(engine)
    notes: dict[str, Optional[str]] = {}
    for name in FIELDS[mode]:
        option = forms.OPTION_OF.get(name)
        if option is not None:
            notes[name] = None if spec.supports(option) else f"Not supported by {spec.title}"
    if MODEL[mode] not in spec.modes:
        notes["engine"] = f"{spec.title} cannot render {TITLES[mode].lower()} jobs"
    return notes


def speed_note(mode: str, form: dict, roots: Roots = None) -> Optional[str]:
    """Said before a job starts when its engine is slow here (MuseTalk on a CPU): how long it will take."""
    from ..engines import get_engine
    from ..engines import speed_note as note

    try:
        engine = get_engine(form.get("engine") or DEFAULT_ENGINE)
    except LipsyncError:
        return None

    def seconds() -> Optional[float]:
        try:
            q = forms.quote(mode, form, roots)
        except (LipsyncError, ValueError):
            return None
        return q.estimate.duration if q.estimate else None

    return note(engine, seconds)


def engine_summary(engine: Optional[str]) -> str:
    spec = engine_spec(engine)
    words = f" Style words: {', '.join(spec.prompt_words)}." if spec.prompt_words else ""
    return f"{spec.description}{words}"


def prompt_note(engine: Optional[str], prompt: Optional[str]) -> str:
    """Which prompt words the engine understands; the rest are reported, never silently dropped."""
    from ..engines import get_engine

    module = get_engine(engine or DEFAULT_ENGINE)
    if not module.SPEC.supports("prompt"):
        return f"{module.SPEC.title} ignores prompts."
    if blank(prompt):
        words = ", ".join(module.SPEC.prompt_words)
        return f"<small>Words {module.SPEC.title} understands: {words}.</small>" if words else ""
    _, unknown = module.parse_prompt(prompt)
    if unknown:
        return f"⚠ <small>Not understood, will be ignored: **{', '.join(unknown)}**.</small>"
    return "<small>✓ All words understood.</small>"


def random_seed() -> int:
    return random.randrange(0, 2**31)


# -- presets ---------------------------------------------------------------------------------------


def preset_choices() -> list[str]:
    from ..presets import list_presets

    return [p.name for p in list_presets()]


def apply_preset(mode: str, name: Optional[str]) -> dict:
    """The option values a preset sets, by form field; a description to show. By name only: the menu
    takes typed values, and a name must never be opened as a path."""
    from ..presets import load_preset

    if blank(name) or any(c in name for c in "/\\") or name.strip().startswith(".") or name.endswith(".json"):
        raise InputError("preset", "pick a preset by its name")
    preset = load_preset(name.strip())
    options = preset.options(MODEL[mode])
    values = {key: options.get(key) for key in ("resolution", "engine", "prompt", "seed", "mask_image")}
    values["prompt"] = values["prompt"] or ""
    if mode == "dialogue" and options.get("order"):
        values["order"] = options["order"]
    values["description"] = preset.description
    return values


def save_preset(mode: str, name: str, form: dict, viewer: Viewer = OWNER, roots: Roots = None) -> str:
    """Save the form's options as a user preset (the owner only: presets are every user's menu);
    returns a confirmation line."""
    from pydantic import ValidationError

    from ..presets import Preset, save_preset as _save
    from ..requests import validation_to_input_error

    if not viewer.owner:
        raise NotAllowed("only the studio's owner can save presets")
    if blank(name):
        raise InputError("preset_name", "give the preset a name")
    try:
        seed = forms.as_int(form.get("seed"))
    except (TypeError, ValueError):
        raise InputError("seed", "must be a whole number") from None
    mask = form.get("mask_image")
    if not blank(mask):
        forms.check_source(mask, "mask_image", roots)
    try:
        preset = Preset(
            name=name.strip(), description=f"Saved from the {TITLES[mode]} tab.",
            resolution=form.get("resolution") or "480p", engine=form.get("engine") or DEFAULT_ENGINE,
            prompt=form.get("prompt") or None, seed=seed,
            order=form.get("order") if mode == "dialogue" else None,
            mask_image=forms.persist_upload(mask) if not blank(mask) else None,
        )
    except ValidationError as exc:
        err = validation_to_input_error(exc)
        raise InputError("preset_name" if err.field == "name" else err.field, err.problem) from None
    path = _save(preset)
    return f"Saved preset **{preset.name}** ({path.name})."


# -- dialogue faces --------------------------------------------------------------------------------


@dataclass
class FacesView:
    image: object  # RGB array, or None
    boxes: list
    left: Optional[int]
    right: Optional[int]
    note: str


def dialogue_faces(image: Optional[str], resolution: Optional[str], mask_image: Optional[str],
                   roots: Roots = None) -> FacesView:
    """Detect the faces of a dialogue image and mark the default speakers L and R."""
    from .faces import preview

    if blank(image):
        return FacesView(None, [], None, None, "Upload an image with two people to see who speaks.")
    try:
        forms.check_source(image, "image", roots)
        if not blank(mask_image):
            forms.check_source(mask_image, "mask_image", roots)
        result = preview(image, resolution or "480p", mask_image or None)
    except InputError as exc:
        return FacesView(None, [], None, None, f"⚠ **{exc.field}**: {exc.problem}")
    n = len(result.boxes)
    extra = f" {n} faces found: pick others above." if n > 2 else ""
    return FacesView(result.image, result.boxes, result.left, result.right,
                     f"**L** speaks the left audio, **R** the right audio (by default the two largest faces, "
                     f"or those the mask covers most).{extra}")


def redraw_faces(image: Optional[str], resolution: Optional[str], boxes: list, left, right,
                 roots: Roots = None) -> object:
    from .faces import redraw

    if blank(image) or not boxes:
        return None
    forms.check_source(image, "image", roots)
    return redraw(image, resolution or "480p", boxes, forms.as_int(left), forms.as_int(right))


# -- generating ------------------------------------------------------------------------------------


class ProgressReporter:
    """Turns run_job's (fraction, stage) into a labelled progress bar with an ETA."""

    def __init__(self, sink: Callable[[float, str], None], mode: str):
        self.sink = sink
        self.labels = VIDEO_STAGE_LABELS if mode == "video" else STAGE_LABELS
        self.started = time.monotonic()

    def __call__(self, fraction: float, stage: str) -> None:
        label = self.labels.get(stage, stage)
        elapsed = time.monotonic() - self.started
        if fraction >= 0.15 and fraction < 1.0:
            left = elapsed * (1 - fraction) / fraction
            label = f"{label} · about {left:.0f} s left"
        self.sink(min(max(fraction, 0.0), 1.0), label)


@dataclass
class JobResult:
    record: object  # JobRecord
    info: str


def generate(studio: Studio, mode: str, form: dict, *, token: Optional[str] = None,
             progress: Optional[Callable[[float, str], None]] = None, viewer: Viewer = OWNER,
             roots: Roots = None) -> JobResult:
    """Render one job locally, recorded under the viewer's session. Raises LipsyncError (Cancelled when
    the user stopped it) for the user. `roots`: where the form's files must be (the UI passes the
    upload cache and the examples)."""
    from ..jobs import JobRecord, run_job

    sink = progress or (lambda fraction, stage: None)
    if studio.cancelled(token):
        studio.finish(token)
        raise Cancelled("cancelled before it started")
    problems = forms.check_form(mode, form, studio.limits, engine_spec(form.get("engine")), roots)
    if problems:
        field, problem = next(iter(problems.items()))
        raise InputError(field, problem)
    request = forms.to_request(mode, form, roots=roots)
    record = JobRecord(model=request.model, request=request.model_dump(exclude_none=True), session=viewer.session)
    try:
        # Only the owner's jobs may start a download (gigabytes on the owner's disk); a visitor's job
        # with an engine not downloaded yet fails with the command the owner can run.
        record = run_job(request, progress=ProgressReporter(sink, mode), cancel=lambda: studio.cancelled(token),
                         record=record, allow_download=viewer.owner)
        cancelled = studio.cancelled(token)
    finally:
        studio.finish(token)
    if record.status != "completed":
        if cancelled:
            raise Cancelled()
        raise LipsyncError(record.error or "the job failed")
    return JobResult(record, job_summary(record))


GONE = "This job no longer exists: it was deleted from History."
_JOB_ID = re.compile(r"[0-9a-zA-Z_-]{1,64}")  # job ids name files: nothing path-like gets through


def _record_if_kept(job_id: str, viewer: Viewer = OWNER):
    """The job's record, or None when it was deleted meanwhile (another tab, History) or is not this
    viewer's to see (which looks the same from outside)."""
    from ..jobs import load

    if not _JOB_ID.fullmatch(str(job_id)):
        return None
    try:
        record = load(job_id)
    except (OSError, ValueError):
        return None
    return record if viewer.may_see(record) else None


def hosted_path(output: str | Path) -> Path:
    """Where the hosted result of a local job is saved: beside its output, so deleting the job removes both."""
    return Path(output).with_suffix(".hosted.mp4")


def mirror(studio: Studio, job_id: Optional[str], api_key: Optional[str] = None, api_url: Optional[str] = None,
           progress: Optional[Callable[[float, str], None]] = None,
           viewer: Viewer = OWNER) -> tuple[Optional[str], str]:
    """Run a finished local job again on the hosted API: (the hosted video or None, a comparison or the
    reason it could not run). Local files go out as public URLs; with none, it says so and sends nothing."""
    from ..requests import parse_request

    if not job_id:
        return None, ""
    from ..remote import HostedClient, hosted_form_state, mirror_available

    record = _record_if_kept(job_id, viewer)
    if record is None:
        return None, GONE
    request = parse_request(record.model, record.request)
    sink = progress or (lambda fraction, stage: None)
    try:
        reason = mirror_available(request, studio.public_url)
        if reason:
            return None, f"⚠ **Hosted API:** {reason}"
        state = hosted_form_state(request, studio.public_url)
        with HostedClient(base_url=api_url or None, api_key=api_key or None) as client:
            sink(0.0, "Submitting to the hosted API")
            job = client.submit(request.model, state)
            job = client.wait(job["id"], poll_interval=studio.mirror_poll_s,
                              progress=lambda fraction, stage: sink(fraction, f"Hosted API: {stage}"))
            video = str(client.download(job["output"], hosted_path(record.output))) if job.get("output") else None
    except LipsyncError as exc:
        return None, f"⚠ **Hosted API:** {exc}"
    return video, _hosted_summary(record, job)


def _hosted_summary(record, job: dict) -> str:
    seconds = (job.get("executionTime") or 0) / 1000
    charged = job.get("credits")
    charged_text = f"{charged} credits charged" if charged is not None else f"about {record.credits} credits (estimate)"
    return "\n".join([
        "| | execution time | credits |",
        "|---|---|---|",
        f"| This computer | {record.executionTime / 1000:.1f} s | free (hosted price {record.credits}) |",
        f"| Hosted API | {seconds:.1f} s | {charged_text} |",
    ])


def job_summary(record) -> str:
    """What a finished job says under its video: time, seed, cost, warnings."""
    lines = [
        f"**Done** in {record.executionTime / 1000:.1f} s · {record.duration:.2f} s of video · "
        f"seed **{record.request.get('seed')}** (enter it under Advanced to get the same video) · "
        f"hosted price {record.credits} credits",
    ]
    for warning in record.warnings:
        lines.append(f"⚠ {warning}")
    return "<br>".join(lines)


# -- sync report -----------------------------------------------------------------------------------


def sync_plot(job_id: Optional[str], viewer: Viewer = OWNER) -> tuple[Optional[str], str]:
    """The sync report of a finished job: (PNG path, Markdown summary). Dialogue measures each speaker
    against their own track on the output's timeline."""
    from ..quality import sync_report

    if not job_id:
        return None, ""
    record = _record_if_kept(job_id, viewer)
    if record is None:
        return None, GONE
    if record.status != "completed" or not record.output:
        return None, ""
    req, video = record.request, Path(record.output)
    png = video.with_suffix(".sync.png")
    try:
        if record.model == kinds.DIALOGUE.name:
            return _dialogue_sync(record, png)
        reference = Path(req["video"]) if record.model == kinds.VIDEO.name else None
        report = sync_report(video, Path(req["audio"]), transcript=req.get("transcript"), reference=reference,
                             face_index=req.get("face_index"), plot=png)
    except LipsyncError as exc:
        return None, f"Sync report unavailable: {exc}"
    return str(png), "**Lip sync:** " + _report_line(report)


def _dialogue_sync(record, png: Path) -> tuple[Optional[str], str]:
    import tempfile

    import cv2
    import numpy as np

    from ..media.audio import arrange_dialogue, load_audio, write_wav
    from ..quality import sync_report
    from .faces import detect_faces

    req, video = record.request, Path(record.output)
    rate = config.AUDIO_RATE
    left = load_audio(Path(req["left_audio"]), "left_audio", rate)
    right = load_audio(Path(req["right_audio"]), "right_audio", rate)
    _, left_line, right_line = arrange_dialogue(left, right, req.get("order", "meanwhile"))
    # The same pair the render used: the pipeline's pick, with the user's index or box choices.
    pair = detect_faces(req["image"], req.get("resolution", "480p"), req.get("mask_image"),
                        left_face=req.get("left_face"), right_face=req.get("right_face"))[2] or (0, 1)
    lines, plots = [], []
    with tempfile.TemporaryDirectory(dir=config.cache_dir()) as tmp:
        for side, line, index, transcript in (("Left", left_line, pair[0], req.get("left_transcript")),
                                              ("Right", right_line, pair[1], req.get("right_transcript"))):
            wav = Path(tmp) / f"{side}.wav"
            write_wav(wav, line, rate)
            plot = Path(tmp) / f"{side}.png"
            report = sync_report(video, wav, transcript=transcript, face_index=index, plot=plot)
            lines.append(f"**{side}:** {_report_line(report)}")
            plots.append(cv2.imread(str(plot)))
        width = max(p.shape[1] for p in plots)
        plots = [cv2.copyMakeBorder(p, 0, 0, 0, width - p.shape[1], cv2.BORDER_CONSTANT, value=(255, 255, 255))
                 for p in plots]
        cv2.imwrite(str(png), np.concatenate(plots, axis=0))
    return str(png), "<br>".join(lines)


def _report_line(report) -> str:
    from ..quality.sync_report import PASS_BILABIAL, PASS_R, PASS_SILENCE

    def mark(ok: bool) -> str:
        return "✓" if ok else "✗ below target"

    parts = [f"r = {report.r:.2f} {mark(report.r >= PASS_R)}",
             f"lag {report.best_lag:+d} frames {mark(abs(report.best_lag) <= 1)}"]
    if report.silence_closed is not None:
        parts.append(f"closed in pauses {report.silence_closed:.0%} {mark(report.silence_closed >= PASS_SILENCE)}")
    if report.bilabial_closed is not None:
        parts.append(f"lips closed on p/b/m {report.bilabial_closed:.0%} of {report.n_bilabials} "
                     f"{mark(report.bilabial_closed >= PASS_BILABIAL)}")
    if report.upper_face_psnr is not None:
        parts.append(f"upper face {report.upper_face_psnr:.1f} dB")
    return " · ".join(parts)


# -- history ---------------------------------------------------------------------------------------

HISTORY_HEADERS = ["When", "Job", "Status", "Inputs", "Settings", "Duration (s)", "Credits (est.)", "Run time (s)",
                   "Output"]


def history_rows(viewer: Viewer = OWNER) -> tuple[list[list], list[str]]:
    """Past jobs the viewer may see (the owner: all, REST jobs too; a visitor: their session's), newest
    first, as table rows and their ids (kept across restarts under LIPSYNC_HOME)."""
    from ..jobs import list_jobs

    rows, ids = [], []
    for record in (r for r in list_jobs() if viewer.may_see(r)):
        req = record.request
        mode = forms.MODE_OF.get(record.model, "")
        inputs = [Path(str(req[k])).name for k in kinds.MEDIA_FIELDS if k != "mask_image" and req.get(k)]
        settings = [req.get("resolution", "480p"), req.get("engine", DEFAULT_ENGINE)]
        if req.get("order"):
            settings.append(req["order"])
        if req.get("seed") is not None:
            settings.append(f"seed {req['seed']}")
        if req.get("prompt"):
            settings.append(f"“{req['prompt']}”")
        status = record.status if record.status != "failed" else f"failed: {record.error}"
        rows.append([
            datetime.fromtimestamp(record.createdAt).strftime("%Y-%m-%d %H:%M"),
            TITLES.get(mode, record.model), status, ", ".join(inputs), ", ".join(settings),
            "" if record.duration is None else f"{record.duration:.2f}",
            "" if record.credits is None else str(record.credits),
            "" if record.executionTime is None else f"{record.executionTime / 1000:.1f}",
            Path(record.output).name if record.output else "",
        ])
        ids.append(record.id)
    return rows, ids


def history_detail(job_id: Optional[str], viewer: Viewer = OWNER) -> tuple[Optional[str], str]:
    """(output video if it still exists, the job record as pretty JSON)."""
    if not job_id:
        return None, ""
    record = _record_if_kept(job_id, viewer)
    if record is None:
        return None, f"Job {job_id} no longer exists."
    video = record.output if record.output and Path(record.output).is_file() else None
    return video, json.dumps(record.model_dump(exclude={"session"}), indent=2, default=str)


def job_output(job_id: Optional[str], viewer: Viewer = OWNER) -> Optional[str]:
    """The output path of a job the viewer may see, else None."""
    record = _record_if_kept(job_id, viewer) if job_id else None
    return record.output if record is not None else None


def history_delete(job_id: Optional[str], viewer: Viewer = OWNER) -> str:
    """Delete a job the viewer may see: a visitor their own, the owner any."""
    from ..jobs import delete

    if not job_id:
        raise InputError("job", "select a job in the table first")
    record = _record_if_kept(job_id, viewer)
    if record is None:
        return "Already deleted."
    if record.output:
        # The sync plot and the hosted result sit beside the output; jobs.delete removes the video itself.
        Path(record.output).with_suffix(".sync.png").unlink(missing_ok=True)
        hosted_path(record.output).unlink(missing_ok=True)
    if record.compare:
        Path(record.compare).unlink(missing_ok=True)
    delete(job_id)
    return f"Deleted job {job_id}."


@dataclass
class Reopened:
    mode: str  # the tab
    form: dict
    output: Optional[str]  # the video, if it still exists
    info: str
    plot: Optional[str]  # the sync plot, if one was made
    missing: list[str]  # inputs that no longer exist


def reopen(job_id: Optional[str], viewer: Viewer = OWNER) -> Reopened:
    """A stored job, ready to be shown again in its tab."""
    if not job_id:
        raise InputError("job", "select a job in the table first")
    record = _record_if_kept(job_id, viewer)
    if record is None:
        raise InputError("job", GONE)
    mode, form = forms.form_from_request(record.request)
    files = [name for name in form if (name in forms.MEDIA[mode] or name == "mask_image") and form[name]]
    missing = [name for name in files
               if not str(form[name]).startswith(("http://", "https://")) and not Path(form[name]).is_file()]
    for name in missing:
        form[name] = None
    output = record.output if record.output and Path(record.output).is_file() else None
    plot = Path(output).with_suffix(".sync.png") if output else None
    info = job_summary(record) if record.status == "completed" else f"⚠ **Failed:** {record.error}"
    return Reopened(mode, form, output, info, str(plot) if plot and plot.is_file() else None, missing)


# -- settings --------------------------------------------------------------------------------------


def api_keys_rows(viewer: Viewer = OWNER) -> list[list]:
    from ..server import keys

    if not viewer.owner:
        return []

    return [[k.prefix, k.name or "", k.created] for k in keys.list_keys()]


KEYS_FOR_VISITORS = ("Only the studio's owner manages this app's REST API keys. On the machine that runs the "
                     "studio: `lipsync keys create NAME`, `lipsync keys list`, `lipsync keys revoke PREFIX`.")


def _owner_only(viewer: Viewer, what: str) -> None:
    if not viewer.owner:
        raise NotAllowed(f"only the studio's owner can {what}")


def create_api_key(name: Optional[str], viewer: Viewer = OWNER) -> tuple[str, str]:
    """(the new key, shown once; a message). The owner only."""
    from ..server import keys

    _owner_only(viewer, "create API keys")

    key, info = keys.create_key(name or None)
    label = f"“{info.name}”" if info.name else info.prefix
    return key, f"Created key {label}. Copy it now: it is shown only once."


def revoke_api_key(key_or_name: Optional[str], viewer: Viewer = OWNER) -> str:
    from ..server import keys

    _owner_only(viewer, "revoke API keys")

    if blank(key_or_name):
        raise InputError("revoke", "enter a key, its sk_… prefix or its name")
    value = key_or_name.strip()
    if keys.revoke_key(value):
        # Never echo a whole key back: its prefix identifies it.
        return f"Revoked {value[:11]}…" if value.startswith("sk_") else f"Revoked “{value}”."
    raise InputError("revoke", "no such key")


def engines_rows() -> list[list]:
    from ..engines import KNOWN_ENGINES, get_engine

    rows = []
    for name in KNOWN_ENGINES:
        try:
            engine = get_engine(name)
            available = engine.availability()
        except Exception as exc:  # noqa: BLE001
            rows.append([name, "", f"broken: {exc}", "", ""])
            continue
        spec = engine.SPEC
        state = {"ready": "ready", "download": "downloads on first use"}.get(available.state, available.reason)
        modes = ", ".join(TITLES[forms.MODE_OF[m]] for m in sorted(spec.modes) if m in forms.MODE_OF)
        rows.append([spec.title, state, modes, ", ".join(sorted(spec.options)), ", ".join(spec.resolutions)])
    return rows


# The weights of engines that have some: one row per Hub repo (what `lipsync models list` prints).
MODELS_HEADERS = ["Engine", "Weights (Hub repo)", "Licence", "Size", "State"]


MODELS_FOR_VISITORS = ("Only the studio's owner downloads, verifies and removes engine weights. On the machine that "
                       "runs the studio: `lipsync models list`, `lipsync models download ENGINE`, "
                       "`lipsync models verify`, `lipsync models remove ENGINE`.")


def model_engines() -> list[tuple[str, str]]:
    """(title, name) of every engine that declares weights to download."""
    from ..engines import list_engines

    return [(e.SPEC.title, e.SPEC.name) for e in list_engines() if e.SPEC.weights]


def models_rows() -> list[list]:
    from ..engines import list_engines, human_size
    from ..models import hub, manager

    pins = hub.read_pins()
    rows = []
    for engine in list_engines():
        for repo in engine.SPEC.weights:
            state = manager.status(repo)
            if state.ready:
                commit = pins.get(repo.repo_id)
                text = f"ready (commit {commit[:10]})" if commit else "ready"
            else:
                text = f"needs download ({human_size(state.missing_bytes)}, {len(state.missing)} of {len(state.files)} files)"
            rows.append([engine.SPEC.name, repo.repo_id, repo.licence, human_size(repo.size), text])
    return rows


def _weights_of(engine: Optional[str]):
    from ..engines import get_engine

    if blank(engine):
        raise InputError("models_engine", "pick an engine")
    spec = get_engine(engine).SPEC
    if not spec.weights:
        raise InputError("models_engine", f"{spec.name} has no weights to download")
    return spec


def download_models(engine: Optional[str], viewer: Viewer = OWNER,
                    progress: Optional[Callable[[float, str], None]] = None) -> str:
    """Download an engine's missing weights (the owner only: gigabytes on the owner's disk), as `lipsync
    models download` does: free-disk check, resume, the commit pinned, hashes recorded."""
    from ..engines import human_size
    from ..models import hub, manager

    _owner_only(viewer, "download engine weights")
    spec = _weights_of(engine)
    need = sum(f.file.size for f in manager.missing(spec.weights))
    sink = ProgressReporter(progress or (lambda fraction, label: None), "download")
    manager.download(spec.weights, progress=sink, engine=spec.name)
    pins = hub.read_pins()
    done = ", ".join(f"{r.repo_id} at {pins.get(r.repo_id, '?')[:10]}" for r in spec.weights)
    return f"{spec.name}: ready ({f'downloaded {human_size(need)}; ' if need else 'already downloaded; '}{done})"


def verify_models(engine: Optional[str], viewer: Viewer = OWNER) -> str:
    """Re-hash the engine's cached weights against what the Hub declared (the owner only: it reads
    gigabytes). Markdown naming each file that differs."""
    from ..models import manager

    _owner_only(viewer, "verify engine weights")
    spec = _weights_of(engine)
    checks = manager.verify(spec.weights)
    bad = [c for c in checks if not c.ok]
    if not bad:
        return f"✓ {spec.name}: all {len(checks)} files match what the Hub declared."
    lines = "\n".join(f"- `{c.name}`: {c.problem}" for c in bad)
    return (f"⚠ {spec.name}: {len(bad)} of {len(checks)} files failed verification. Remove the engine's weights "
            f"and download them again.\n{lines}")


def remove_models(engine: Optional[str], viewer: Viewer = OWNER) -> str:
    from ..engines import human_size
    from ..models import manager

    _owner_only(viewer, "remove engine weights")
    spec = _weights_of(engine)
    freed = manager.remove(spec.weights)
    return f"{spec.name}: removed {', '.join(r.repo_id for r in spec.weights)} ({human_size(freed)} freed)"


def storage_text(studio: Studio, viewer: Viewer = OWNER) -> str:
    from ..jobs import list_jobs

    public = studio.public_url or "none (mirroring needs `--share`, a Space or `LIPSYNC_PUBLIC_URL`)"
    limit = f"{studio.limits.max_seconds:.0f} s per job" if studio.limits.max_seconds else "none"
    if not viewer.owner:  # the data folder's path and size are the owner's business
        mine = sum(1 for r in list_jobs() if viewer.may_see(r))
        return f"- Your jobs in this browser: {mine}\n- Public URL for mirroring: {public}\n- Length limit: {limit}"
    home = config.home()
    used = sum(p.stat().st_size for p in home.rglob("*") if p.is_file()) / 1e6
    return (f"- Data folder (`LIPSYNC_HOME`): `{home}` — {len(list_jobs())} jobs, {used:.1f} MB\n"
            f"- Public URL for mirroring: {public}\n- Length limit: {limit}")


# -- batch -----------------------------------------------------------------------------------------

BATCH_PREVIEW_HEADERS = ["Row", "Kind", "Inputs", "Output", "Status"]
MAX_BATCH_ROWS = 100  # one batch holds the render slot for all its rows
_KIND_TITLES = {MODEL[m]: TITLES[m] for m in MODEL}


def _uploaded(files, roots: Roots, persist: bool, seen: dict):
    """A batch resolver for the studio: a media cell names one of the uploaded files (by file name; any
    folder in the cell is ignored). URLs and other paths are refused: a visitor's batch reads only what
    they uploaded. `seen` caches persisted copies, so planning twice hashes each file once."""
    by_name = {Path(p).name: str(p) for p in files or () if not blank(p)}

    def resolve(field: str, value: str) -> str:
        if "://" in value:
            raise InputError(field, "name one of the uploaded files (URLs are not fetched by a studio batch)")
        path = by_name.get(Path(value.replace("\\", "/")).name)
        if path is None:
            raise InputError(field, f"{value!r} is not among the uploaded files")
        forms.check_source(path, field, roots)
        if not persist:
            return path
        if path not in seen:
            seen[path] = forms.persist_upload(path)
        return seen[path]

    return resolve


def _batch_check(studio: Studio):
    """The checks a tab's form gets (limits, media kinds, engine support), for each planned row."""

    def check(request) -> None:
        mode = forms.MODE_OF[request.model]
        form = request.model_dump(exclude_none=True)
        for side in ("left_face", "right_face"):  # a box is fine for a request; check_form knows indices
            if not isinstance(form.get(side), (int, type(None))):
                form.pop(side)
        form["face_override"] = "left_face" in form or "right_face" in form
        problems = forms.check_form(mode, form, studio.limits, engine_spec(request.engine))
        if problems:
            field, problem = next(iter(problems.items()))
            raise InputError(field, problem)

    return check


def batch_rows(table: Optional[str] = None, media=(), visuals=(), audios=(), options: Optional[dict] = None,
               roots: Roots = None) -> tuple[list[dict], list[str], list]:
    """The rows of a batch: from an uploaded CSV/JSONL table naming uploaded `media`, or (no table) the
    `visuals` paired with the `audios` by file stem, each with `options`. Returns (rows, problems with
    the pairing, the files rows may name)."""
    from ..jobs import batch

    if not blank(table):
        forms.check_source(table, "jobs", roots)
        if Path(table).suffix.lower() not in (".csv", ".jsonl", ".ndjson"):
            raise InputError("jobs", "upload a .csv or .jsonl file")
        rows = batch.read_rows(Path(table))
        files, problems = list(media or ()), []
    else:
        rows, problems = batch.pair_by_stem([p for p in visuals or () if not blank(p)],
                                            [p for p in audios or () if not blank(p)])
        files = [*(visuals or ()), *(audios or ())]
        extra = {k: v for k, v in (options or {}).items() if not blank(v)}
        if "seed" in extra:
            try:
                extra["seed"] = forms.as_int(extra["seed"])
            except (TypeError, ValueError):
                raise InputError("seed", "must be a whole number") from None
        rows = [{**row, **extra} for row in rows]
    if len(rows) > MAX_BATCH_ROWS:
        raise InputError("jobs", f"{len(rows)} rows is over this studio's limit of {MAX_BATCH_ROWS} per batch")
    return rows, problems, files


def batch_preview(studio: Studio, table: Optional[str] = None, media=(), visuals=(), audios=(),
                  options: Optional[dict] = None, roots: Roots = None) -> tuple[list[list], str]:
    """The planned rows as a table (what each will render, or why it cannot), and a note."""
    from ..jobs import batch

    try:
        data, problems, files = batch_rows(table, media, visuals, audios, options, roots)
    except InputError as exc:
        return [], f"⚠ **{exc.field}**: {exc.problem}"
    if not data:
        hint = "Upload a jobs table, or videos (or images) and audios with matching names."
        return [], "<br>".join([*(f"⚠ {p}" for p in problems), hint])
    rows = batch.plan(data, Path("."), _uploaded(files, roots, False, {}), _batch_check(studio))
    table_rows = []
    for row in rows:
        inputs = [Path(str(getattr(row.request, k))).name for k in batch.MEDIA_FIELDS
                  if row.request is not None and getattr(row.request, k, None)]
        status = "ready" if row.status != "failed" else f"⚠ {row.error.removeprefix(f'row {row.number}: ')}"
        table_rows.append([str(row.number), _KIND_TITLES.get(row.model, row.model), ", ".join(inputs),
                           row.output.name if row.output else "", status])
    ready = sum(1 for r in rows if r.status != "failed")
    note = f"{ready} of {len(rows)} rows ready to render."
    return table_rows, "<br>".join([note, *(f"⚠ {p}" for p in problems)])


@dataclass
class BatchResult:
    summary: object  # BatchSummary
    archive: Optional[str]  # a zip of every output the batch has
    outputs: list[str]


def run_batch(studio: Studio, table: Optional[str] = None, media=(), visuals=(), audios=(),
              options: Optional[dict] = None, *, token: Optional[str] = None,
              progress: Optional[Callable[[float, str], None]] = None, viewer: Viewer = OWNER,
              roots: Roots = None) -> BatchResult:
    """Render a batch, each row a job of the viewer's session. Its folder is named by the session and the
    rows' requests, so running the same batch again skips the rows already done (after a cancel, a
    closed page or a restart)."""
    import hashlib

    from ..jobs import batch

    sink = progress or (lambda fraction, stage: None)
    try:
        if studio.cancelled(token):
            raise Cancelled("cancelled before it started")
        data, _, files = batch_rows(table, media, visuals, audios, options, roots)
        if not data:
            raise InputError("jobs", "no rows to render: upload a jobs table, or videos/images and audios "
                                     "with matching names")
        resolve, check = _uploaded(files, roots, True, {}), _batch_check(studio)
        planned = batch.plan(data, Path("."), resolve, check)
        key = json.dumps([viewer.session, [r.request.model_dump() if r.request else r.error for r in planned]],
                         sort_keys=True, default=str)
        out_dir = config.private_dir(config.outputs_dir() / f"batch-{hashlib.sha256(key.encode()).hexdigest()[:16]}")
        rows = batch.plan(data, out_dir, resolve, check)
        summary = batch.run_batch(rows, progress=lambda f, label, row: sink(f, label),
                                  cancel=lambda: studio.cancelled(token), session=viewer.session)
    finally:
        studio.finish(token)
    outputs = [str(r.output) for r in rows if r.status in ("done", "skipped") and r.output and r.output.is_file()]
    return BatchResult(summary, _zip(out_dir, outputs), outputs)


def _zip(folder: Path, outputs: list[str]) -> Optional[str]:
    """A zip of `outputs`, named by what it holds (so a later run with more outputs makes a new one,
    never a stale copy); written to a temp file and renamed."""
    import hashlib
    import os
    import zipfile

    if not outputs:
        return None
    names = sorted(Path(p).name for p in outputs)
    target = folder / f"{folder.name}-{hashlib.sha256('/'.join(names).encode()).hexdigest()[:8]}.zip"
    if not target.exists():
        tmp = folder / f".{target.name}.part"
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:  # MP4s are compressed already
            for path in outputs:
                z.write(path, Path(path).name)
        os.chmod(tmp, config.PRIVATE_FILE)
        os.replace(tmp, target)
    return str(target)
