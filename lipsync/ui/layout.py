"""The studio's Blocks: three job tabs (Video dub, Talking image, Dialogue), History and Settings.

Components are grouped per tab in a `JobTab`; the event functions live in `events.py` and see plain values.
Renders share one concurrency slot ("render"), so users of a shared link queue first come, first served,
while the light events (cost, previews, presets) run beside them and keep the UI responsive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from . import gradio_import

gradio_import.install()  # before Gradio's first import: skips its per-import stub generation

import gradio as gr  # noqa: E402

from ..engines import DEFAULT_ENGINE
from ..kinds import DEFAULT_LENGTH_MODE, LENGTH_MODES
from ..errors import Cancelled, InputError, LipsyncError
from . import events, forms
from .access import Access
from .forms import FIELDS, MODES, TITLES
from .studio import Studio

# Handlers that change what every user shares (keys, presets, deletes) are not Gradio API endpoints, and
# each checks on the server who calls it: hiding an endpoint does not stop a hand-made queue request.
PRIVATE = "private"

CSS = """
.cost-box {border-left: 4px solid var(--color-accent); padding: 6px 12px !important;
          background: var(--block-background-fill);}
.faces-note, .prompt-note {margin-top: -6px;}
footer {visibility: visible;}
"""

TAB_INTRO = {
    "video": "Dub a video: the lips follow the new audio. A longer video is cut to the audio; a shorter one plays "
             "forward then backward (or as the length mode in Advanced says).",
    "image": "Make a portrait talk: lips follow the audio, with blinks, small head motion and breathing.",
    "dialogue": "Two people in one image, one audio track each. **L** and **R** on the preview show who speaks.",
}
LENGTH_MODE_CHOICES = [(f"{name}: {what}", name) for name, what in LENGTH_MODES.items()]
ORDER_CHOICES = [("Together, as recorded (meanwhile)", "meanwhile"), ("Left, then right", "left_right"),
                 ("Right, then left", "right_left")]


@dataclass
class JobTab:
    mode: str
    fields: dict[str, gr.components.Component] = field(default_factory=dict)
    extra: dict[str, gr.components.Component] = field(default_factory=dict)

    def __getitem__(self, name: str):
        return self.fields[name] if name in self.fields else self.extra[name]

    def inputs(self) -> list:
        return [self.fields[name] for name in FIELDS[self.mode]]


def _form(mode: str, values) -> dict:
    return dict(zip(FIELDS[mode], values))


def _shown(component, value):
    """A form value as its component shows it: textboxes hold "" for none and numbers as text."""
    if isinstance(component, gr.Textbox):
        return "" if value is None else str(value)
    return value


def _user_error(exc: LipsyncError) -> gr.Error:
    return gr.Error(str(exc), title="Cannot render" if isinstance(exc, InputError) else "Job failed",
                    print_exception=False)


# -- building a job tab ----------------------------------------------------------------------------


def _media_inputs(tab: JobTab) -> None:
    mode, f = tab.mode, tab.fields
    if mode == "video":
        f["video"] = gr.Video(label="Video to dub", sources=["upload"], height=300)
        f["audio"] = gr.Audio(label="New audio", type="filepath", sources=["upload", "microphone"])
    elif mode == "image":
        f["image"] = gr.Image(label="Portrait", type="filepath", image_mode=None, sources=["upload", "clipboard"],
                              height=300)
        f["audio"] = gr.Audio(label="Speech", type="filepath", sources=["upload", "microphone"])
    else:
        f["image"] = gr.Image(label="Image with two people", type="filepath", image_mode=None,
                              sources=["upload", "clipboard"], height=300)
        with gr.Row():
            f["left_audio"] = gr.Audio(label="Left person says", type="filepath", sources=["upload", "microphone"])
            f["right_audio"] = gr.Audio(label="Right person says", type="filepath", sources=["upload", "microphone"])
        f["order"] = gr.Radio(ORDER_CHOICES, value="meanwhile", label="Who speaks when")


def _options(tab: JobTab, studio: Studio) -> None:
    f, x = tab.fields, tab.extra
    with gr.Row():
        # allow_custom_value: presets saved later are added to the choices in the browser only.
        x["preset"] = gr.Dropdown(choices=events.preset_choices(), value=None, label="Preset", scale=3,
                                  allow_custom_value=True,
                                  info="Named settings; pick one to fill in the options below")
        resolutions = ["480p", "720p"] if studio.limits.allow_720p else ["480p"]
        f["resolution"] = gr.Radio(resolutions, value="480p", label="Resolution", scale=2,
                                   info="Short side of the output")
    x["preset_note"] = gr.Markdown(visible=False)
    f["engine"] = gr.Dropdown(choices=[(DEFAULT_ENGINE, DEFAULT_ENGINE)], value=DEFAULT_ENGINE, label="Engine",
                              allow_custom_value=True)
    x["engine_note"] = gr.Markdown(elem_classes="prompt-note")
    with gr.Accordion("Advanced", open=False):
        f["prompt"] = gr.Textbox(label="Prompt", placeholder="e.g. calm smile", max_lines=1,
                                 info="Style words for the engine")
        x["prompt_note"] = gr.Markdown(elem_classes="prompt-note")
        with gr.Row():
            # Textboxes, not gr.Number: a Number shows (and sends) 0 when empty, and empty means "random".
            f["seed"] = gr.Textbox(label="Seed", value="", max_lines=1, placeholder="random", scale=4,
                                   info="Empty = random; the same seed gives the same blinks and head motion")
            x["dice"] = gr.Button("🎲 Random", size="sm", scale=1)
        if tab.mode == "dialogue":
            with gr.Row():
                f["left_transcript"] = gr.Textbox(label="Left transcript (optional)", lines=2,
                                                  info="What the left person says (English): improves lip timing")
                f["right_transcript"] = gr.Textbox(label="Right transcript (optional)", lines=2,
                                                   info="What the right person says")
        else:
            f["transcript"] = gr.Textbox(label="Transcript (optional)", lines=2,
                                         info="What is said (English): lips close on p, b, m at the right time")
            f["face_index"] = gr.Textbox(label="Face", value="", max_lines=1, placeholder="the largest",
                                         info="Which face to animate, counted from the left from 0; empty = the largest")
        if tab.mode == "video":
            with gr.Row():
                f["length_mode"] = gr.Dropdown(LENGTH_MODE_CHOICES, value=DEFAULT_LENGTH_MODE, label="Length mode",
                                               info="When the audio is longer than the video (a longer video is "
                                                    "cut to the audio). Local only: the hosted API extends by its own rule")
                # A textbox, like the seed: empty means the video's own audio is dropped.
                f["keep_background"] = gr.Textbox(label="Keep background (dB)", value="", max_lines=1,
                                                  placeholder="dropped",
                                                  info="The video's own audio under the new speech at this level, "
                                                       "e.g. -18; empty = dropped")
            f["compare"] = gr.Checkbox(value=False, label="Also write a before/after MP4 (source and dub side by side)")
        f["mask_image"] = gr.Image(label="Mask (optional)", type="filepath", image_mode=None, sources=["upload"],
                                   height=180)
        gr.Markdown("<small>White = may change. Confines the edit, and picks the face when there are several.</small>")
        # Presets are every user's menu: only the owner saves them (shown at page load).
        with gr.Row(visible=False) as save_row:
            x["preset_name"] = gr.Textbox(label="Save these settings as a preset", placeholder="Preset name",
                                          max_lines=1, scale=3)
            x["save_preset"] = gr.Button("Save preset", scale=1, size="sm")
        x["save_row"] = save_row
        x["save_note"] = gr.Markdown()


def _results(tab: JobTab) -> None:
    x = tab.extra
    if tab.mode == "dialogue":
        with gr.Group():
            x["faces_preview"] = gr.Image(label="Speakers", interactive=False, height=280, format="png")
            with gr.Row():
                # Choices are filled per image; the server-side component keeps its empty list, so
                # values are checked by check_form rather than by the dropdown.
                tab.fields["left_face"] = gr.Dropdown(label="Left speaker (L)", choices=[], value=None,
                                                      interactive=True, scale=2, allow_custom_value=True)
                tab.fields["right_face"] = gr.Dropdown(label="Right speaker (R)", choices=[], value=None,
                                                       interactive=True, scale=2, allow_custom_value=True)
                x["swap"] = gr.Button("⇄ Swap", scale=1, size="sm")
        x["faces_note"] = gr.Markdown("Upload an image with two people to see who speaks.", elem_classes="faces-note")
        tab.fields["face_override"] = gr.State(False)
        x["faces_state"] = gr.State({})
        x["pending_faces"] = gr.State(None)
    x["result"] = gr.Video(label="Result", interactive=False, height=340, autoplay=False)
    x["download"] = gr.File(label="Download MP4", interactive=False, visible=False)
    x["compare_video"] = gr.Video(label="Before / after", interactive=False, height=300, visible=False)
    x["info"] = gr.Markdown()
    with gr.Accordion("Sync report", open=True):
        x["sync_plot"] = gr.Image(label="Mouth opening over the speech envelope", interactive=False, height=260)
        x["sync_text"] = gr.Markdown()
    with gr.Group(visible=False) as group:
        x["hosted_result"] = gr.Video(label="Hosted API result", interactive=False, height=300)
        x["hosted_info"] = gr.Markdown()
    x["hosted_group"] = group


def _examples_for(tab: JobTab, studio: Studio) -> tuple[list, list]:
    a = studio.assets
    transcript = (a / "speech_en.txt").read_text().strip() if (a / "speech_en.txt").is_file() else ""
    if tab.mode == "video":
        return [tab["video"], tab["audio"], tab["transcript"]], [
            [str(a / "talking.mp4"), str(a / "speech_en.wav"), transcript]]
    if tab.mode == "image":
        return [tab["image"], tab["audio"], tab["transcript"], tab["prompt"]], [
            [str(a / "portrait.png"), str(a / "speech_en.wav"), transcript, ""],
            [str(a / "hopper.jpg"), str(a / "speech_right.wav"), "", "calm smile"]]
    return [tab["image"], tab["left_audio"], tab["right_audio"], tab["order"]], [
        [str(a / "two_people.png"), str(a / "speech_left.wav"), str(a / "speech_right.wav"), "meanwhile"],
        [str(a / "two_people.png"), str(a / "speech_left.wav"), str(a / "speech_right.wav"), "left_right"]]


def _job_tab(studio: Studio, mode: str) -> JobTab:
    tab = JobTab(mode)
    x = tab.extra
    gr.Markdown(TAB_INTRO[mode])
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            _media_inputs(tab)
            _options(tab, studio)
            x["mirror"] = gr.Checkbox(label="Also render on the hosted API (mirror) and compare", value=False,
                                      info="Needs an API key in Settings and a public URL for your files")
            x["cost"] = gr.Markdown(events.cost_text(mode, {}), elem_classes="cost-box")
            with gr.Row():
                x["generate"] = gr.Button("Generate", variant="primary", scale=3)
                x["cancel"] = gr.Button("Cancel", variant="stop", scale=1)
            x["token"] = gr.State(None)
            x["job_id"] = gr.State(None)
        with gr.Column(scale=1):
            _results(tab)
    # Stable ids ("image-audio", "video-generate") for tests and custom CSS.
    for name, component in {**tab.fields, **x}.items():
        if isinstance(component, gr.components.Component) and not isinstance(component, gr.State):
            component.elem_id = f"{mode}-{name}".replace("_", "-")
    inputs, rows = _examples_for(tab, studio)
    if all(Path(value).is_file() for row in rows for value in row[:2]):
        x["examples"] = gr.Examples(rows, inputs=inputs, label="Examples: click one to render it (offline)",
                                    cache_examples=False)
    return tab


# -- wiring a job tab ------------------------------------------------------------------------------


def _wire_job_tab(tab: JobTab, studio: Studio, access: Access, api_key, api_url, history_refresh) -> None:
    mode, x = tab.mode, tab.extra
    names = FIELDS[mode]
    roots = studio.file_roots()

    # Live cost: any media or option that changes the price.
    cost_names = [n for n in ("video", "audio", "left_audio", "right_audio", "order", "resolution", "length_mode")
                  if n in names]
    cost_inputs = [tab[n] for n in cost_names]

    def cost(*values):
        return events.cost_text(mode, dict(zip(cost_names, values)), roots)

    for name in cost_names:
        tab[name].change(cost, cost_inputs, x["cost"], queue=False, show_progress="hidden")

    # Engine: disable (and say so) what it does not support.
    optional = [n for n in names if n in forms.OPTION_OF]

    # What each option says when supported, to restore it after an engine that lacked it.
    defaults = {n: (getattr(tab[n], "info", None), tab[n].label) for n in optional}

    def engine_changed(engine, prompt):
        try:
            support = events.engine_support(mode, engine)
            spec = events.engine_spec(engine)
        except LipsyncError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        updates = []
        for n in optional:
            why = support.get(n)
            info, label = defaults[n]
            if hasattr(tab[n], "info"):
                updates.append(gr.update(interactive=why is None, info=why or info))
            else:  # components without an info line say it in the label
                updates.append(gr.update(interactive=why is None, label=f"{label} ({why})" if why else label))
        note = f"⚠ {support['engine']}" if support.get("engine") else f"<small>{events.engine_summary(engine)}</small>"
        return [gr.update(choices=list(spec.resolutions)), *updates, gr.update(interactive=support.get("seed") is None),
                note, events.prompt_note(engine, prompt)]

    tab["engine"].change(engine_changed, [tab["engine"], tab["prompt"]],
                         [tab["resolution"], *[tab[n] for n in optional], x["dice"], x["engine_note"], x["prompt_note"]],
                         queue=False, show_progress="hidden")
    tab["prompt"].change(events.prompt_note, [tab["engine"], tab["prompt"]], x["prompt_note"], queue=False,
                         show_progress="hidden")
    x["dice"].click(lambda: str(events.random_seed()), None, tab["seed"], queue=False, show_progress="hidden")

    # Presets.
    preset_targets = ["resolution", "engine", "prompt", "seed", "mask_image"] + (["order"] if mode == "dialogue" else [])

    def preset_chosen(name):
        if not name:
            return [gr.update() for _ in preset_targets] + [gr.update(visible=False)]
        try:
            values = events.apply_preset(mode, name)
        except LipsyncError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        return [_shown(tab[n], values[n]) if n in values else gr.update() for n in preset_targets] + \
            [gr.update(value=f"<small>{values['description']}</small>", visible=bool(values["description"]))]

    x["preset"].change(preset_chosen, x["preset"], [*[tab[n] for n in preset_targets], x["preset_note"]],
                       queue=False, show_progress="hidden")

    # Dialogue: who speaks, before generating.
    if mode == "dialogue":
        _wire_faces(tab, roots)

    # Generate → sync report → history; Cancel; mirror panel.
    def start():
        return studio.new_job_token()

    def validate(token, *values):
        form = _form(mode, values[:len(names)])
        try:
            spec = events.engine_spec(form.get("engine"))
        except LipsyncError:
            spec = None
        problems = forms.check_form(mode, form, studio.limits, spec, roots)
        return [None, *[gr.validate(n not in problems, problems.get(n, "")) for n in names]]

    def run(request: gr.Request, progress=gr.Progress(), *values):
        token, form_values = values[0], values[1:1 + len(names)]
        slow = events.speed_note(mode, _form(mode, form_values), roots)
        if slow:  # before the job starts, not after it
            gr.Warning(slow, duration=30, title="This will take a while")
        try:
            result = events.generate(studio, mode, _form(mode, form_values), token=token,
                                     progress=lambda f, d: progress(f, desc=d), viewer=access.viewer(request),
                                     roots=roots)
        except Cancelled:
            raise gr.Error("The job was cancelled; no video was made.", title="Cancelled",
                           print_exception=False) from None
        except LipsyncError as exc:
            raise _user_error(exc) from None
        record = result.record
        # The sync plot and the hosted result are cleared here and filled in by the next steps, so the
        # video shows first.
        video, compare = studio.deliver(record.output), studio.deliver(record.compare)
        return (video, gr.update(value=video, visible=True), result.info, record.id, None, "", None, "",
                gr.update(value=compare, visible=bool(compare)))

    def run_mirror(job_id, on, key, url, request: gr.Request, progress=gr.Progress()):
        if not on:
            return gr.update(), gr.update()
        video, info = events.mirror(studio, job_id, key, url, progress=lambda f, d: progress(f, desc=d),
                                    viewer=access.viewer(request))
        return studio.deliver(video), info

    def run_sync(job_id, request: gr.Request):
        plot, text = events.sync_plot(job_id, access.viewer(request))
        return studio.deliver(plot), text

    run_inputs = [x["token"], *tab.inputs()]
    run_outputs = [x["result"], x["download"], x["info"], x["job_id"], x["hosted_result"], x["hosted_info"],
                   x["sync_plot"], x["sync_text"], x["compare_video"]]

    def chain(trigger):
        job = trigger.then(run, run_inputs, run_outputs, validator=validate, concurrency_id="render",
                           concurrency_limit=1, show_progress="full", show_progress_on=[x["result"]])
        job.success(run_sync, x["job_id"], [x["sync_plot"], x["sync_text"]], concurrency_id="sync",
                    concurrency_limit=1, show_progress="minimal", show_progress_on=[x["sync_plot"]])
        # Waiting on the hosted API must not hold the render slot: its own group, after the local job.
        job.success(run_mirror, [x["job_id"], x["mirror"], api_key, api_url], [x["hosted_result"], x["hosted_info"]],
                    concurrency_id="mirror", concurrency_limit=4, show_progress="full",
                    show_progress_on=[x["hosted_result"]])
        job.then(*history_refresh)

    chain(x["generate"].click(start, None, x["token"], queue=False, show_progress="hidden"))
    if "examples" in x:
        chain(x["examples"].load_input_event.then(start, None, x["token"], queue=False, show_progress="hidden"))

    def cancel(token):
        if studio.cancel(token):
            gr.Info("Cancelling: the job stops at the next frame.")
        else:
            gr.Info("Nothing is running.")

    # Queued (for its message) but in its own unlimited group, so it never waits behind a render.
    x["cancel"].click(cancel, x["token"], None, concurrency_id="cancel", concurrency_limit=None,
                      show_progress="hidden")
    x["mirror"].change(lambda on: gr.update(visible=bool(on)), x["mirror"], x["hosted_group"], queue=False,
                       show_progress="hidden")


def _wire_faces(tab: JobTab, roots) -> None:
    x = tab.extra
    outputs = [x["faces_preview"], x["faces_state"], tab["left_face"], tab["right_face"], tab["face_override"],
               x["pending_faces"], x["faces_note"]]

    def detect(image, resolution, mask, pending, state, left, right, override):
        view = events.dialogue_faces(image, resolution, mask, roots)
        n = len(view.boxes)
        choices = [(f"Face {i + 1}", i) for i in range(n)]
        keep = None
        if pending and n:
            keep = pending  # History's re-open: the job's own speakers
        elif override and state.get("image") == image and state.get("n") == n:
            keep = (left, right)  # same image at another resolution or mask: keep the user's pick
        new_left, new_right = (keep if keep and all(v is not None and 0 <= v < n for v in keep)
                               else (view.left, view.right))
        picture = view.image
        if n and (new_left, new_right) != (view.left, view.right):
            picture = events.redraw_faces(image, resolution, view.boxes, new_left, new_right, roots)
        return (picture, {"image": image, "n": n, "boxes": view.boxes}, gr.update(choices=choices, value=new_left),
                gr.update(choices=choices, value=new_right), (new_left, new_right) != (view.left, view.right),
                None, view.note)

    inputs = [tab["image"], tab["resolution"], tab["mask_image"], x["pending_faces"], x["faces_state"],
              tab["left_face"], tab["right_face"], tab["face_override"]]
    for name in ("image", "resolution", "mask_image"):
        tab[name].change(detect, inputs, outputs, concurrency_id="faces", concurrency_limit=2, show_progress="minimal",
                         show_progress_on=[x["faces_preview"]])

    def picked(image, resolution, state, left, right):
        if left is not None and left == right:
            gr.Warning("Left and right must be different faces.")
        return events.redraw_faces(image, resolution, state.get("boxes", []), left, right, roots), True

    pick_io = ([tab["image"], tab["resolution"], x["faces_state"], tab["left_face"], tab["right_face"]],
               [x["faces_preview"], tab["face_override"]])
    tab["left_face"].input(picked, *pick_io, show_progress="hidden")
    tab["right_face"].input(picked, *pick_io, show_progress="hidden")

    def swap(image, resolution, state, left, right):
        if left is None or right is None:
            return gr.update(), gr.update(), gr.update(), gr.update()
        return right, left, events.redraw_faces(image, resolution, state.get("boxes", []), right, left, roots), True

    x["swap"].click(swap, [tab["image"], tab["resolution"], x["faces_state"], tab["left_face"], tab["right_face"]],
                    [tab["left_face"], tab["right_face"], x["faces_preview"], tab["face_override"]],
                    show_progress="hidden")


# -- History and Settings --------------------------------------------------------------------------


@dataclass
class HistoryTab:
    table: gr.Dataframe
    ids: gr.State
    selected: gr.State
    video: gr.Video
    record: gr.Code
    note: gr.Markdown
    refresh: gr.Button
    reopen: gr.Button
    delete: gr.Button


def _history_tab() -> HistoryTab:
    gr.Markdown("Every job, kept across restarts. Select a row to watch it, re-open it in its tab, or delete it.")
    with gr.Row():
        refresh = gr.Button("↻ Refresh", size="sm", scale=0)
    table = gr.Dataframe(headers=events.HISTORY_HEADERS, type="array", interactive=False, wrap=True,
                         max_height=380, label="Jobs", elem_id="history-table",
                         column_widths=["12%", "9%", "9%", "18%", "18%", "8%", "8%", "8%", "10%"])
    with gr.Row(equal_height=False):
        with gr.Column():
            video = gr.Video(label="Output", interactive=False, height=300, elem_id="history-video")
            with gr.Row():
                reopen = gr.Button("Re-open in its tab", variant="primary", elem_id="history-reopen")
                delete = gr.Button("Delete job", variant="stop", elem_id="history-delete")
            note = gr.Markdown(elem_id="history-note")
        with gr.Column():
            record = gr.Code(label="Job record", language="json", interactive=False, max_lines=24,
                             elem_id="history-record")
    return HistoryTab(table, gr.State([]), gr.State(None), video, record, note, refresh, reopen, delete)


@dataclass
class SettingsTab:
    api_key: gr.Textbox
    api_url: gr.Textbox
    status: gr.Markdown
    engines: gr.Dataframe
    keys_group: gr.Group  # the owner's key management
    keys_table: gr.Dataframe
    keys_note: gr.Markdown  # what visitors see instead
    models: gr.Dataframe
    models_group: gr.Group  # the owner's download / verify / remove
    models_engine: gr.Dropdown
    models_buttons: dict  # "download", "verify", "remove"
    models_note: gr.Markdown
    models_visitors: gr.Markdown


def _settings_tab(studio: Studio, access: Access) -> SettingsTab:
    import os

    gr.Markdown("### Hosted API (mirror)")
    with gr.Row():
        api_key = gr.Textbox(label="API key", type="password", placeholder="sk_…",
                             value=None, info="Kept in this browser tab's memory only: never saved to history, "
                                              "presets or logs. Empty = LIPSYNC_API_KEY from the environment")
        api_url = gr.Textbox(label="API URL", value=os.environ.get("LIPSYNC_API_URL", ""),
                             placeholder="https://lipsync.studio/api/v1", info="Empty = the hosted API")
    gr.Markdown("### Keys for this app's REST API (`/api/v1`)")
    keys_note = gr.Markdown(events.KEYS_FOR_VISITORS)
    # Shown to the owner only (page load); every handler checks the caller again on the server.
    with gr.Group(visible=False) as keys_group:
        with gr.Row():
            key_name = gr.Textbox(label="New key name (optional)", max_lines=1, scale=3)
            create = gr.Button("Create key", scale=1)
        new_key = gr.Textbox(label="New key: copy it now, it is shown only once", interactive=False,
                             buttons=["copy"], visible=False)
        keys_table = gr.Dataframe(headers=["Key", "Name", "Created"], type="array", interactive=False, label="Keys")
        with gr.Row():
            revoke_value = gr.Textbox(label="Revoke: the key, its sk_… prefix or its name", max_lines=1, scale=3)
            revoke = gr.Button("Revoke", variant="stop", scale=1)
        key_note = gr.Markdown()

    def make_key(name, request: gr.Request):
        viewer = access.viewer(request)
        try:
            key, message = events.create_api_key(name, viewer)
        except LipsyncError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        return gr.update(value=key, visible=True), message, events.api_keys_rows(viewer), ""

    def drop_key(value, request: gr.Request):
        viewer = access.viewer(request)
        try:
            message = events.revoke_api_key(value, viewer)
        except LipsyncError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        return message, events.api_keys_rows(viewer), ""

    create.click(make_key, key_name, [new_key, key_note, keys_table, key_name], api_visibility=PRIVATE)
    revoke.click(drop_key, revoke_value, [key_note, keys_table, revoke_value], api_visibility=PRIVATE)
    gr.Markdown("### Engines")
    engines = gr.Dataframe(headers=["Engine", "State", "Jobs", "Options", "Resolutions"], type="array",
                           interactive=False, label="Engines")
    gr.Markdown("### Models (engine weights from the Hugging Face Hub)")
    models = gr.Dataframe(headers=events.MODELS_HEADERS, type="array", interactive=False, label="Weights",
                          elem_id="models-table")
    models_visitors = gr.Markdown(events.MODELS_FOR_VISITORS)
    with gr.Group(visible=False) as models_group:
        with gr.Row():
            # choices arrive at page load; any other name is refused by events (an unknown engine)
            models_engine = gr.Dropdown(label="Engine", choices=[], value=None, scale=2, elem_id="models-engine",
                                        allow_custom_value=True)
            buttons = {"download": gr.Button("Download", variant="primary", scale=1, elem_id="models-download"),
                       "verify": gr.Button("Verify", scale=1, elem_id="models-verify"),
                       "remove": gr.Button("Remove", variant="stop", scale=1, elem_id="models-remove")}
        models_note = gr.Markdown(elem_id="models-note")
    gr.Markdown("### This app")
    status = gr.Markdown()
    return SettingsTab(api_key, api_url, status, engines, keys_group, keys_table, keys_note,
                       models, models_group, models_engine, buttons, models_note, models_visitors)


def _wire_models(settings: SettingsTab, tabs_by_mode: dict[str, JobTab], access: Access) -> None:
    """Download / verify / remove an engine's weights (the owner only; checked again in `events`). After a
    change, the weights table, the engines table and every tab's engine menu show the new state."""
    menus = [t["engine"] for t in tabs_by_mode.values()]
    refreshed = [settings.models, settings.engines, *menus]

    def states():
        choices = events.engine_choices()
        return [events.models_rows(), events.engines_rows(), *[gr.update(choices=choices) for _ in menus]]

    def act(what):
        def handler(engine, request: gr.Request, progress=gr.Progress()):
            viewer = access.viewer(request)
            try:
                if what == "download":
                    note = events.download_models(engine, viewer, lambda fraction, label: progress(fraction, desc=label))
                elif what == "verify":
                    note = events.verify_models(engine, viewer)
                else:
                    note = events.remove_models(engine, viewer)
            except LipsyncError as exc:
                raise gr.Error(str(exc), title=f"Cannot {what} the weights", print_exception=False) from None
            return [note, *states()]
        handler.__name__ = f"models_{what}"  # its name in Gradio's config, where a hand-made request finds it
        return handler

    for what, button in settings.models_buttons.items():
        button.click(act(what), settings.models_engine, [settings.models_note, *refreshed], api_visibility=PRIVATE,
                     concurrency_limit=1, concurrency_id="models")


# -- the whole app ---------------------------------------------------------------------------------


def build_ui(studio: Optional[Studio] = None, access: Optional[Access] = None) -> gr.Blocks:
    """The studio's Blocks. Theme and CSS go to `gr.mount_gradio_app`/`launch` (Gradio 6): see `THEME`, `CSS`.
    `access` tells the owner from visitors (default: nobody is the owner)."""
    studio = studio or Studio()
    access = access or Access(public_urls=lambda: (studio.public_url,))
    with gr.Blocks(title="Lipsync Studio", delete_cache=(3600, 24 * 3600)) as demo:
        gr.Markdown("# Lipsync Studio\nLocal, offline lip sync. Pick a job, add media and press **Generate**, "
                    "or click an example to see it work. The same jobs are served as a REST API at `/api/v1`.")
        tabs_by_mode: dict[str, JobTab] = {}
        with gr.Tabs() as tabs:
            for mode in MODES:
                with gr.Tab(TITLES[mode], id=mode):
                    tabs_by_mode[mode] = _job_tab(studio, mode)
            with gr.Tab("Batch", id="batch"):
                batch = _batch_tab(studio)
            with gr.Tab("History", id="history") as history_tab:
                history = _history_tab()
            with gr.Tab("Settings", id="settings") as settings_tab:
                settings = _settings_tab(studio, access)

        def rows(request: gr.Request):
            return events.history_rows(access.viewer(request))

        history_refresh = (rows, None, [history.table, history.ids])
        for tab in tabs_by_mode.values():
            _wire_job_tab(tab, studio, access, settings.api_key, settings.api_url, history_refresh)
        _wire_history(history, tabs, tabs_by_mode, studio, access)
        _wire_batch(batch, studio, access, history_refresh)
        _wire_presets(tabs_by_mode, studio, access)
        _wire_models(settings, tabs_by_mode, access)

        # Engines are imported here, not at start-up, so the app is ready sooner.
        def page_load(request: gr.Request):
            viewer = access.viewer(request)
            choices = events.engine_choices()
            notes = [f"<small>{events.engine_summary(DEFAULT_ENGINE)}</small>", events.prompt_note(DEFAULT_ENGINE, "")]
            owner_only = [gr.update(visible=viewer.owner) for _ in tabs_by_mode]
            return [u for _ in tabs_by_mode for u in (gr.update(choices=choices), *notes)] + owner_only + \
                [*events.history_rows(viewer), events.engines_rows(), events.storage_text(studio, viewer),
                 gr.update(visible=viewer.owner), events.api_keys_rows(viewer), gr.update(visible=not viewer.owner),
                 events.models_rows(), gr.update(visible=viewer.owner),
                 gr.update(choices=(weighted := events.model_engines()), value=weighted[0][1] if weighted else None),
                 gr.update(visible=not viewer.owner)]

        per_tab = [c for t in tabs_by_mode.values() for c in (t["engine"], t["engine_note"], t["prompt_note"])]
        save_rows = [t["save_row"] for t in tabs_by_mode.values()]
        demo.load(page_load, None, [*per_tab, *save_rows, history.table, history.ids, settings.engines, settings.status,
                                    settings.keys_group, settings.keys_table, settings.keys_note,
                                    settings.models, settings.models_group, settings.models_engine,
                                    settings.models_visitors],
                  show_progress="hidden", api_visibility=PRIVATE)
        history_tab.select(*history_refresh, show_progress="hidden", api_visibility=PRIVATE)
        def storage(request: gr.Request):  # a job may have downloaded weights since the page loaded
            return events.storage_text(studio, access.viewer(request)), events.models_rows(), events.engines_rows()

        settings_tab.select(storage, None, [settings.status, settings.models, settings.engines], show_progress="hidden",
                            api_visibility=PRIVATE)
    return demo


def _wire_history(history: HistoryTab, tabs: gr.Tabs, tabs_by_mode: dict[str, JobTab], studio: Studio,
                  access: Access) -> None:
    def rows(request: gr.Request):
        return events.history_rows(access.viewer(request))

    history.refresh.click(rows, None, [history.table, history.ids], show_progress="hidden", api_visibility=PRIVATE)

    def select(ids, evt: gr.SelectData, request: gr.Request):
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        job_id = ids[row] if ids and 0 <= row < len(ids) else None
        video, record = events.history_detail(job_id, access.viewer(request))
        return job_id, studio.deliver(video), record, ""

    history.table.select(select, history.ids, [history.selected, history.video, history.record, history.note],
                         show_progress="hidden", api_visibility=PRIVATE)

    def delete(job_id, request: gr.Request):
        viewer = access.viewer(request)
        output = events.job_output(job_id, viewer)
        try:
            message = events.history_delete(job_id, viewer)
        except LipsyncError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        if output:  # the copies handed to browsers go with the job
            for path in (output, Path(output).with_suffix(".sync.png"), events.hosted_path(output)):
                studio.withdraw(path)
        rows, ids = events.history_rows(viewer)
        return rows, ids, None, None, "", message

    history.delete.click(delete, history.selected, [history.table, history.ids, history.selected, history.video,
                                                    history.record, history.note], api_visibility=PRIVATE)

    outputs = [tabs]
    for tab in tabs_by_mode.values():
        outputs += [*tab.inputs(), tab["result"], tab["download"], tab["job_id"], tab["info"], tab["sync_plot"],
                    tab["sync_text"]]
        if tab.mode == "dialogue":
            outputs.append(tab["pending_faces"])

    def reopen(job_id, request: gr.Request):
        try:
            job = events.reopen(job_id, access.viewer(request))
        except (LipsyncError, OSError, ValueError) as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        tab = tabs_by_mode[job.mode]
        updates = {tabs: gr.Tabs(selected=job.mode)}
        for name in FIELDS[job.mode]:
            if name in ("left_face", "right_face"):
                continue  # set by the face preview from pending_faces, once it has the image's faces
            value = job.form.get(name)
            if name in forms.MEDIA[job.mode] or name == "mask_image":
                value = studio.deliver(value) if value and not str(value).startswith(("http://", "https://")) else value
            updates[tab[name]] = _shown(tab[name], value)
        if job.mode == "dialogue":
            overridden = job.form.get("face_override")
            updates[tab["pending_faces"]] = (job.form["left_face"], job.form["right_face"]) if overridden else None
        output = studio.deliver(job.output)
        updates.update({tab["result"]: output, tab["download"]: gr.update(value=output, visible=bool(output)),
                        tab["job_id"]: job_id, tab["info"]: job.info, tab["sync_plot"]: studio.deliver(job.plot),
                        tab["sync_text"]: ""})
        if job.missing:
            gr.Warning(f"These inputs no longer exist: {', '.join(job.missing)}")
        return updates

    history.reopen.click(reopen, history.selected, outputs, show_progress="hidden", api_visibility=PRIVATE)


def _wire_presets(tabs_by_mode: dict[str, JobTab], studio: Studio, access: Access) -> None:
    dropdowns = [t["preset"] for t in tabs_by_mode.values()]
    roots = studio.file_roots()
    for tab in tabs_by_mode.values():
        mode = tab.mode

        def save(request: gr.Request, name, *values, mode=mode):
            try:
                message = events.save_preset(mode, name, _form(mode, values), access.viewer(request), roots)
            except LipsyncError as exc:
                raise gr.Error(str(exc), print_exception=False) from None
            choices = events.preset_choices()
            return [message, *[gr.update(choices=choices) for _ in dropdowns]]

        tab["save_preset"].click(save, [tab["preset_name"], *tab.inputs()], [tab["save_note"], *dropdowns],
                                 show_progress="hidden", api_visibility=PRIVATE)


# -- Batch -----------------------------------------------------------------------------------------

BATCH_INTRO = (
    "Render many jobs in one go. Either upload a **jobs table** (CSV with a header of request fields, or JSONL: "
    "`video`, `image`, `audio`, `left_audio`, `right_audio`, `resolution`, `seed`, `prompt`, ... as in "
    "`lipsync batch --help`) and the media files it names, or upload **videos (or images) and audios paired "
    "by file name** (`anna.mp4` + `anna.wav`). A failed row never stops the others; running the same batch "
    "again skips the rows already done.")


@dataclass
class BatchTab:
    source: gr.Radio
    table: gr.File
    media: gr.File
    table_group: gr.Group
    visuals: gr.File
    audios: gr.File
    resolution: gr.Radio
    prompt: gr.Textbox
    seed: gr.Textbox
    pairs_group: gr.Group
    preview: gr.Dataframe
    note: gr.Markdown
    run: gr.Button
    cancel: gr.Button
    token: gr.State
    summary: gr.Dataframe
    totals: gr.Markdown
    downloads: gr.File


def _batch_tab(studio: Studio) -> BatchTab:
    from ..jobs.batch import SUMMARY_HEADERS

    gr.Markdown(BATCH_INTRO)
    source = gr.Radio([("A jobs table (CSV or JSONL)", "table"), ("Files paired by name", "pairs")], value="table",
                      label="Jobs from", elem_id="batch-source")
    with gr.Group() as table_group:
        with gr.Row():
            table = gr.File(label="Jobs table (.csv or .jsonl)", file_types=[".csv", ".jsonl"], type="filepath",
                            elem_id="batch-table")
            media = gr.File(label="Media the table names (by file name)", file_count="multiple", type="filepath",
                            elem_id="batch-media")
    with gr.Group(visible=False) as pairs_group:
        with gr.Row():
            visuals = gr.File(label="Videos or images", file_count="multiple", type="filepath",
                              elem_id="batch-visuals")
            audios = gr.File(label="Audios (same names)", file_count="multiple", type="filepath",
                             elem_id="batch-audios")
        with gr.Row():
            resolutions = ["480p", "720p"] if studio.limits.allow_720p else ["480p"]
            resolution = gr.Radio(resolutions, value="480p", label="Resolution", elem_id="batch-resolution")
            prompt = gr.Textbox(label="Prompt", max_lines=1, placeholder="e.g. calm smile", elem_id="batch-prompt")
            seed = gr.Textbox(label="Seed", max_lines=1, placeholder="random", elem_id="batch-seed")
    preview = gr.Dataframe(headers=events.BATCH_PREVIEW_HEADERS, type="array", interactive=False, wrap=True,
                           label="Rows", max_height=320, elem_id="batch-preview")
    note = gr.Markdown(elem_id="batch-note")
    with gr.Row():
        run = gr.Button("Run batch", variant="primary", scale=3, elem_id="batch-run")
        cancel = gr.Button("Cancel", variant="stop", scale=1, elem_id="batch-cancel")
    summary = gr.Dataframe(headers=SUMMARY_HEADERS, type="array", interactive=False, wrap=True, label="Summary",
                           max_height=320, elem_id="batch-summary")
    totals = gr.Markdown(elem_id="batch-totals")
    downloads = gr.File(label="Outputs (a zip of all, then each one)", file_count="multiple", interactive=False,
                        elem_id="batch-downloads")
    return BatchTab(source, table, media, table_group, visuals, audios, resolution, prompt, seed, pairs_group,
                    preview, note, run, cancel, gr.State(None), summary, totals, downloads)


def _wire_batch(tab: BatchTab, studio: Studio, access: Access, history_refresh) -> None:
    roots = studio.file_roots()
    inputs = [tab.source, tab.table, tab.media, tab.visuals, tab.audios, tab.resolution, tab.prompt, tab.seed]

    def parts(source, table, media, visuals, audios, resolution, prompt, seed) -> dict:
        if source == "table":
            return {"table": table, "media": media or ()}
        return {"visuals": visuals or (), "audios": audios or (),
                "options": {"resolution": resolution, "prompt": prompt, "seed": seed}}

    def preview(*values):
        return events.batch_preview(studio, **parts(*values), roots=roots)

    tab.source.change(lambda s: (gr.update(visible=s == "table"), gr.update(visible=s != "table")), tab.source,
                      [tab.table_group, tab.pairs_group], queue=False, show_progress="hidden")
    for component in inputs:
        # Text is previewed when the user leaves the box, not at each keystroke (each preview probes every file).
        event = component.blur if isinstance(component, gr.Textbox) else component.change
        event(preview, inputs, [tab.preview, tab.note], concurrency_id="faces", concurrency_limit=2,
              show_progress="minimal", show_progress_on=[tab.preview])

    def run(request: gr.Request, progress=gr.Progress(), *values):
        token, values = values[0], values[1:]
        try:
            result = events.run_batch(studio, **parts(*values), token=token,
                                      progress=lambda f, d: progress(f, desc=d), viewer=access.viewer(request),
                                      roots=roots)
        except LipsyncError as exc:
            raise _user_error(exc) from None
        files = [f for f in (studio.deliver(p) for p in [result.archive, *result.outputs]) if f]
        return result.summary.table(), f"**{result.summary.totals()}**", files or None

    tab.run.click(studio.new_job_token, None, tab.token, queue=False, show_progress="hidden").then(
        run, [tab.token, *inputs], [tab.summary, tab.totals, tab.downloads], concurrency_id="render",
        concurrency_limit=1, show_progress="full", show_progress_on=[tab.summary]).then(*history_refresh)

    def cancel(token):
        gr.Info("Cancelling: the row running stops at the next frame; the rest are not started."
                if studio.cancel(token) else "Nothing is running.")

    tab.cancel.click(cancel, tab.token, None, concurrency_id="cancel", concurrency_limit=None, show_progress="hidden")


def theme() -> gr.themes.Base:
    return gr.themes.Soft(primary_hue="violet", secondary_hue="sky")
