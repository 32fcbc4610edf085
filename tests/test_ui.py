"""The studio's event functions on real media, and the app (UI + API on one port) over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lipsync import config
from lipsync.engines.base import EngineSpec
from lipsync.errors import Cancelled, LipsyncError
from lipsync.ui import events, forms
from lipsync.ui.studio import Limits, Studio, default_limits, uploads_dir

from conftest import make_speech, save_rgb


@pytest.fixture(scope="module")
def short_speech(media_dir) -> Path:
    """About 1.5 s of speech: a short render keeps these tests fast."""
    return make_speech(media_dir / "short.wav", "Bob made a map.", speed=170)


@pytest.fixture(scope="module")
def portrait_small(media_dir, astronaut) -> Path:
    import cv2

    return save_rgb(media_dir / "portrait_small.png", cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA))


@pytest.fixture()
def studio() -> Studio:
    return Studio(limits=Limits())


# -- cost ------------------------------------------------------------------------------------------


def test_cost_follows_media_and_options(speech_wav, speech_wav_2, astronaut_video):
    from lipsync.media.probe import probe

    seconds = probe(speech_wav, "audio").duration
    assert 2 < seconds < 5  # the minimum of 5 s applies below

    text = events.cost_text("image", {"audio": str(speech_wav), "resolution": "480p"})
    assert "10 credits" in text and "minimum 5 s applies" in text and f"audio {seconds:.2f} s" in text
    assert "20 credits" in events.cost_text("image", {"audio": str(speech_wav), "resolution": "720p"})

    # Video dub: a 2 s video under ~3 s of audio is extended; the audio is billed.
    dub = events.cost_text("video", {"video": str(astronaut_video), "audio": str(speech_wav), "resolution": "480p"})
    assert "is extended to it" in dub and "10 credits" in dub

    left, right = str(speech_wav), str(speech_wav_2)
    together = events.cost_text("dialogue", {"left_audio": left, "right_audio": right, "order": "meanwhile"})
    in_turn = events.cost_text("dialogue", {"left_audio": left, "right_audio": right, "order": "left_right"})
    total = probe(speech_wav, "a").duration + probe(speech_wav_2, "a").duration
    assert "meanwhile: the longer track" in together and "10 credits" in together
    assert f"{2 * int(np.ceil(total))} credits" in in_turn and "left_right: left" in in_turn


def test_cost_hint_and_bad_media_name_the_field(tmp_path, astronaut_png):
    assert "add the left audio and right audio" in events.cost_text("dialogue", {"order": "meanwhile"})
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio at all")
    text = events.cost_text("image", {"audio": str(bad)})
    assert "**audio**" in text and "cannot read" in text
    text = events.cost_text("image", {"audio": str(astronaut_png)})
    assert "**audio**" in text and "got an image" in text


# -- checking and building requests ----------------------------------------------------------------


def test_check_form_reports_each_field(speech_wav, astronaut_png, astronaut_video):
    problems = forms.check_form("video", {}, Limits())
    assert problems == {"video": "is required", "audio": "is required"}

    problems = forms.check_form("video", {"video": str(astronaut_png), "audio": str(astronaut_png)}, Limits())
    assert "expected a video" in problems["video"] and "expected an audio file" in problems["audio"]

    ok = {"image": str(astronaut_png), "audio": str(speech_wav), "resolution": "480p", "seed": 3.0}
    assert forms.check_form("image", ok, Limits()) == {}
    assert "limit of 2 s" in forms.check_form("image", ok, Limits(max_seconds=2))["audio"]
    assert forms.check_form("image", {**ok, "seed": 1.5}, Limits())["seed"] == "must be a whole number"
    assert forms.check_form("image", {**ok, "seed": "lucky"}, Limits())["seed"] == "must be a whole number"
    assert forms.check_form("image", {**ok, "seed": " 12 ", "face_index": ""}, Limits()) == {}

    # An option the engine does not support is refused next to that option, never silently dropped.
    spec = EngineSpec("plain", "Plain", "", modes=frozenset({"lipsync-image"}), options=frozenset({"resolution"}),
                      resolutions=("480p",))
    problems = forms.check_form("image", {**ok, "prompt": "calm", "transcript": "hi", "resolution": "720p"},
                                Limits(), spec)
    assert set(problems) == {"prompt", "transcript", "resolution", "seed"}
    assert "not supported by the plain engine" in problems["prompt"]
    assert "cannot render dialogue" in forms.check_form("dialogue", {}, Limits(), spec)["engine"]


def test_requests_persist_uploads_and_reopen(tmp_path, speech_wav, speech_wav_2, two_people_png):
    upload = tmp_path / "gradio-cache" / "two.png"
    upload.parent.mkdir()
    upload.write_bytes(two_people_png.read_bytes())
    form = {"image": str(upload), "left_audio": str(speech_wav), "right_audio": str(speech_wav_2),
            "order": "right_left", "resolution": "480p", "engine": "builtin", "prompt": "  ", "seed": "7",
            "left_face": 1, "right_face": 0, "face_override": False}
    request = forms.to_request("dialogue", form)
    assert Path(request.image).parent.parent == uploads_dir()  # survives Gradio's cache being cleaned
    assert Path(request.image).read_bytes() == two_people_png.read_bytes()
    assert request.seed == 7 and request.prompt is None
    assert request.left_face is None and request.right_face is None  # not overridden: the pipeline picks

    swapped = forms.to_request("dialogue", {**form, "face_override": True})
    assert (swapped.left_face, swapped.right_face) == (1, 0)
    assert forms.persist_upload(swapped.image) == swapped.image  # already persisted: same file

    mode, back = forms.form_from_request(swapped.model_dump(exclude_none=True))
    assert mode == "dialogue" and back["order"] == "right_left" and back["face_override"] is True
    assert (back["left_face"], back["right_face"], back["seed"]) == (1, 0, 7)


# -- engines, prompts, presets ---------------------------------------------------------------------


def test_engine_choices_and_prompt_feedback():
    assert ("Built-in (fast, offline)", "builtin") in events.engine_choices()
    assert all(note is None for note in events.engine_support("image", "builtin").values())
    assert "calm" in events.prompt_note("builtin", "")
    assert "All words understood" in events.prompt_note("builtin", "calm smile")
    note = events.prompt_note("builtin", "calm wizardly")
    assert "wizardly" in note and "calm" not in note.split("ignored")[1]
    assert 0 <= events.random_seed() < 2**31


def _fake_engine(monkeypatch, name: str, *, ok: bool, download: bool, options=("resolution",)):
    import sys
    import types

    from lipsync import engines
    from lipsync.engines.base import Availability
    from lipsync.models import WeightFile, WeightRepo

    module = types.ModuleType(f"fake_{name}")
    module.SPEC = EngineSpec(name, name.title(), "A test engine.", modes=frozenset({"lipsync-image"}),
                             options=frozenset(options), resolutions=("480p",),
                             weights=(WeightRepo("org/net", (WeightFile("net.bin", 1000),), "mit"),) if download else ())
    module.availability = lambda: Availability("ready") if ok else \
        Availability("download" if download else "unavailable", "no weights")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(engines.KNOWN_ENGINES, name, module.__name__)


def test_unsupported_options_are_marked(monkeypatch):
    _fake_engine(monkeypatch, "neural", ok=False, download=True)
    _fake_engine(monkeypatch, "broken", ok=False, download=False)
    choices = dict((value, label) for label, value in events.engine_choices())
    assert choices["neural"] == "Neural (downloads on first use)" and "broken" not in choices
    support = events.engine_support("image", "neural")
    assert support["prompt"] == support["seed"] == support["transcript"] == support["mask_image"] == \
        "Not supported by Neural"
    assert "cannot render dialogue" in events.engine_support("dialogue", "neural")["engine"]
    assert events.prompt_note("neural", "calm") == "Neural ignores prompts."


def test_presets_apply_and_save(astronaut_png):
    names = events.preset_choices()
    assert {"Quick preview", "Quality 720p", "Podcast dialogue"} <= set(names)
    quality = events.apply_preset("image", "Quality 720p")
    assert quality["resolution"] == "720p" and quality["seed"] == 42 and "order" not in quality
    assert events.apply_preset("dialogue", "Podcast dialogue")["order"] == "meanwhile"

    form = {"resolution": "720p", "engine": "builtin", "prompt": "calm", "seed": 5.0, "order": "left_right",
            "mask_image": str(astronaut_png)}
    assert "My take" in events.save_preset("dialogue", "My take", form)
    assert "My take" in events.preset_choices()
    saved = events.apply_preset("dialogue", "My take")
    assert (saved["resolution"], saved["prompt"], saved["seed"], saved["order"]) == ("720p", "calm", 5, "left_right")
    assert Path(saved["mask_image"]).parent.parent == uploads_dir()
    with pytest.raises(LipsyncError, match="preset_name"):
        events.save_preset("image", "  ", form)


# -- dialogue faces --------------------------------------------------------------------------------


def test_dialogue_faces_marks_speakers_and_swaps(two_people_png, astronaut_png):
    view = events.dialogue_faces(str(two_people_png), "480p", None)
    assert len(view.boxes) == 2 and (view.left, view.right) == (0, 1)
    assert view.boxes[0][0] < view.boxes[1][0]  # left to right
    assert view.image.shape[0] == 480  # drawn at the output size the pipeline detects on
    swapped = events.redraw_faces(str(two_people_png), "480p", view.boxes, 1, 0)
    assert swapped.shape == view.image.shape and not np.array_equal(swapped, view.image)
    # The L box is green: its colour moves to the right face when swapped.
    x0, y0, _, _ = view.boxes[1]
    assert tuple(swapped[y0, x0 + 10]) == (46, 204, 113)

    one = events.dialogue_faces(str(astronaut_png), "480p", None)
    assert one.image is None and "found 1 face, dialogue needs 2" in one.note
    assert "Upload" in events.dialogue_faces(None, "480p", None).note


# -- generating ------------------------------------------------------------------------------------


def test_progress_reporter_labels_stages_with_eta():
    seen = []
    reporter = events.ProgressReporter(lambda f, d: seen.append((f, d)), "video")
    reporter(0.0, "decode")
    reporter(0.5, "render")
    reporter(1.0, "encode")
    assert seen[0] == (0.0, "Reading media")
    assert seen[1][1].startswith("Tracking faces and rendering · about") and seen[1][1].endswith("s left")
    assert seen[2] == (1.0, "Encoding")


def test_generate_records_job_history_and_sync(studio, portrait_small, short_speech):
    form = {"image": str(portrait_small), "audio": str(short_speech), "resolution": "480p", "engine": "builtin",
            "seed": "11", "face_index": "", "transcript": "Bob made a map."}
    stages = []
    token = studio.new_job_token()
    result = events.generate(studio, "image", form, token=token, progress=lambda f, d: stages.append(d))
    record = result.record
    assert record.status == "completed" and Path(record.output).is_file()
    assert {"Reading media", "Encoding"} <= set(stages) and any(s.startswith("Rendering") for s in stages)
    assert "seed **11**" in result.info and f"{record.credits} credits" in result.info
    assert not studio.cancelled(token)
    # No public URL here: the mirror says so instead of sending local paths.
    hosted_video, hosted_info = events.mirror(studio, record.id, "sk_never_shown_anywhere")
    assert hosted_video is None and "public URL" in hosted_info and "image" in hosted_info

    rows, ids = events.history_rows()
    assert ids == [record.id]
    row = dict(zip(events.HISTORY_HEADERS, rows[0]))
    assert row["Job"] == "Talking image" and row["Status"] == "completed"
    assert "portrait_small.png" in row["Inputs"] and "seed 11" in row["Settings"] and row["Credits (est.)"] == "10"
    video, text = events.history_detail(record.id)
    assert video == record.output and json.loads(text)["id"] == record.id
    assert "sk_never" not in (config.jobs_dir() / f"{record.id}.json").read_text()

    plot, summary = events.sync_plot(record.id)
    assert Path(plot).is_file() and summary.startswith("**Lip sync:** r = ")

    job = events.reopen(record.id)
    assert job.mode == "image" and job.output == record.output and job.plot == plot and job.missing == []
    assert job.form["seed"] == 11 and job.form["transcript"] == "Bob made a map." and "seed **11**" in job.info
    assert Path(job.form["image"]).read_bytes() == portrait_small.read_bytes()

    assert "Deleted" in events.history_delete(record.id)
    assert events.history_rows() == ([], []) and not Path(record.output).exists() and not Path(plot).exists()
    # A tab still showing the deleted job: its follow-up events say so instead of failing.
    assert events.sync_plot(record.id) == (None, events.GONE)
    assert events.mirror(studio, record.id, "sk_x") == (None, events.GONE)


def test_generate_cancel_and_bad_input(studio, portrait_small, short_speech, tmp_path):
    form = {"image": str(portrait_small), "audio": str(short_speech), "resolution": "480p", "engine": "builtin"}
    token = studio.new_job_token()

    def cancel_once_rendering(fraction, desc):
        if desc.startswith("Rendering"):
            studio.cancel(token)

    with pytest.raises(Cancelled):
        events.generate(studio, "image", form, token=token, progress=cancel_once_rendering)
    rows, _ = events.history_rows()
    assert rows[0][2] == "failed: cancelled by the user"

    # Cancel pressed while the job still waited in the queue.
    token = studio.new_job_token()
    assert studio.cancel(token)
    with pytest.raises(Cancelled, match="cancelled before it started"):
        events.generate(studio, "image", form, token=token)
    assert not studio.cancel("no-such-token")

    blank = save_rgb(tmp_path / "wall.png", np.full((200, 200, 3), 128, np.uint8))
    with pytest.raises(LipsyncError, match="^image: no face found$"):
        events.generate(studio, "image", {**form, "image": str(blank)})
    with pytest.raises(LipsyncError, match="^audio: is required$"):
        events.generate(studio, "image", {**form, "audio": None})


# -- settings and the app --------------------------------------------------------------------------


def test_studio_limits_and_public_url(monkeypatch):
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("SPACE_HOST", raising=False)
    monkeypatch.delenv("LIPSYNC_PUBLIC_URL", raising=False)
    assert default_limits() == Limits() and Studio().public_url is None
    monkeypatch.setenv("SPACE_ID", "someone/lipsync")
    monkeypatch.setenv("SPACE_HOST", "someone-lipsync.hf.space")
    limits = default_limits()
    assert limits.max_seconds == 60 and limits.queue_size
    assert Studio().public_url == "https://someone-lipsync.hf.space"
    monkeypatch.setenv("LIPSYNC_PUBLIC_URL", "https://studio.example.org/")
    assert Studio().public_url == "https://studio.example.org"
    assert Studio(share_url="https://abc.gradio.live").public_url == "https://abc.gradio.live"
    assert str(config.home() / "jobs") not in Studio().allowed_paths()  # the key store is never served


def test_api_keys_from_settings():
    key, message = events.create_api_key("laptop")
    assert key.startswith("sk_") and "shown only once" in message
    assert events.api_keys_rows()[0][1] == "laptop"
    assert events.revoke_api_key("laptop") == "Revoked “laptop”."
    assert events.api_keys_rows() == []
    with pytest.raises(LipsyncError, match="no such key"):
        events.revoke_api_key("laptop")


def test_mirror_round_trip_through_the_local_api(monkeypatch, portrait_small, short_speech):
    """Mirroring against this app's own REST API (same contract as the hosted one): the files go out
    as public URLs, the hosted result comes back beside the local one."""
    import threading

    import app
    import uvicorn

    from lipsync.server import keys

    monkeypatch.setenv("LIPSYNC_ALLOW_PRIVATE_URLS", "1")  # the "public" URL is loopback here
    port = _free_port()
    studio = Studio(limits=Limits(), share_url=f"http://127.0.0.1:{port}", mirror_poll_s=0.3)
    server_app, _ = app.build_app(studio)
    server = uvicorn.Server(uvicorn.Config(server_app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive()
            threading.Event().wait(0.05)
        key, _ = keys.create_key("mirror")
        form = {"image": str(portrait_small), "audio": str(short_speech), "resolution": "480p", "seed": 3}
        record = events.generate(studio, "image", form).record
        stages = []
        video, info = events.mirror(studio, record.id, key, f"http://127.0.0.1:{port}/api/v1",
                                    progress=lambda f, d: stages.append(d))
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    assert video and Path(video).stat().st_size > 10_000, info
    assert "| Hosted API |" in info and "| This computer |" in info and stages[0] == "Submitting to the hosted API"
    assert key not in (config.jobs_dir() / f"{record.id}.json").read_text()
    events.history_delete(record.id)
    assert not Path(video).exists()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_app_serves_ui_and_api_on_one_port():
    import app
    from starlette.testclient import TestClient

    args = app.parse_args(["--port", "9999", "--auth", "ann:secret"])
    assert (args.port, args.auth, args.share) == (9999, "ann:secret", False)
    with pytest.raises(SystemExit):
        app.parse_args(["--auth", "no-colon"])

    server, blocks = app.build_app(Studio(limits=Limits()))
    with TestClient(server, base_url="http://127.0.0.1:7860") as client:
        assert client.get("/").status_code == 200
        ui = client.get("/config").json()
        labels = {c["props"].get("label") for c in ui["components"]}
        assert {"Video dub", "Talking image", "Dialogue", "History", "Settings"} <= labels
        ids = {c["props"].get("elem_id") for c in ui["components"]}
        assert {"image-generate", "dialogue-swap", "video-cost", "image-cancel"} <= ids
        assert ui["run_history"] is False  # inputs, the API key among them, are not kept in the browser
        response = client.get("/api/v1/jobs/nope")
        assert response.status_code == 401 and "API key" in response.json()["error"]


def test_gradio_imports_without_regenerating_its_stubs(tmp_path):
    """The start-up shortcut (lipsync.ui.gradio_import) takes effect on this Gradio: a component class
    defined afterwards gets no generated .pyi stub beside its source (without the shortcut Gradio writes
    one), and components still work: events wire up and the config lists them."""
    import os
    import subprocess
    import sys

    (tmp_path / "shouting_box.py").write_text(
        "import gradio as gr\n\n\nclass ShoutingBox(gr.Textbox):\n    pass\n")
    code = """
from lipsync.ui import gradio_import
assert gradio_import.install()
import gradio as gr
assert gradio_import.installed(), "Gradio no longer has component_meta.create_or_modify_pyi"
assert not gradio_import.install()  # too late once Gradio is imported: says so
from shouting_box import ShoutingBox
with gr.Blocks() as demo:
    box = ShoutingBox(label="name")
    out = gr.Textbox()
    gr.Button("go").click(lambda s: s.upper(), box, out)
config = demo.get_config_file()
assert {c["props"].get("label") for c in config["components"]} >= {"name"}
assert len(config["dependencies"]) == 1
print("ok")
"""
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
    assert not (tmp_path / "shouting_box.pyi").exists()
