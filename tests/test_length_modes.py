"""Video dub when the video and audio lengths differ (length modes), the kept background audio and the
before/after MP4: end to end on media made here, checked on the decoded output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import make_speech, run_ffmpeg
from lipsync import VideoRequest, run_job
from lipsync.errors import InputError
from lipsync.kinds import LENGTH_MODES
from lipsync.media.audio import load_audio
from lipsync.media.video import source_index
from lipsync.requests import parse_request

REPO = Path(__file__).resolve().parents[1]
TONE_HZ = 440.0
TONE_AMP = 0.5  # ffmpeg's sine source is at 1/8 of full scale: turned up 4x


def frames_of(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def tone_level(x: np.ndarray, sr: int, start: float, end: float, hz: float = TONE_HZ) -> float:
    """Amplitude of the `hz` sine in x[start:end] (least squares on sin and cos): other sounds average out."""
    seg = x[int(start * sr):int(end * sr)].astype(np.float64)
    t = np.arange(seg.size) / sr
    basis = np.stack([np.sin(2 * np.pi * hz * t), np.cos(2 * np.pi * hz * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, seg, rcond=None)
    return float(np.hypot(*coef))


def top(frame: np.ndarray) -> np.ndarray:
    return frame[:110].astype(np.int16)  # helmet and hair: no engine edits them


def diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(top(a) - top(b)).mean())


@pytest.fixture(scope="module")
def panning_tone_video(media_dir, astronaut_png) -> Path:
    """1.2 s (30 frames) of the astronaut panning fast to the left, with a 440 Hz tone as its own audio."""
    out = media_dir / "panning_tone.mp4"
    run_ffmpeg("-loop", "1", "-i", str(astronaut_png), "-f", "lavfi", "-i", f"sine=frequency={TONE_HZ:g}:sample_rate=48000",
               "-vf", "scale=360:360,crop=300:300:x='40*t':y=30,format=yuv420p", "-af", f"volume={TONE_AMP * 8:g}",
               "-t", "1.2", "-r", "25", "-c:v", "libx264", "-c:a", "aac", "-b:a", "192k", "-ac", "1", str(out))
    return out


@pytest.fixture(scope="module")
def long_speech(media_dir) -> Path:
    """About 3 s of speech: longer than the video."""
    return make_speech(media_dir / "length_modes.wav", "Mom and Bob bought maps and pens, maybe.")


@pytest.fixture(scope="module")
def dubs(tmp_path_factory, panning_tone_video, long_speech) -> dict:
    folder = tmp_path_factory.mktemp("modes")
    out = {}
    for mode in LENGTH_MODES:
        record = run_job(VideoRequest(video=str(panning_tone_video), audio=str(long_speech), length_mode=mode, seed=1),
                         out_path=folder / f"{mode}.mp4")
        assert record.status == "completed", record.error
        out[mode] = (record, frames_of(folder / f"{mode}.mp4"))
    return out


def test_the_plan_of_each_mode():
    n = 5
    assert [source_index(k, n, "bounce") for k in range(10)] == [0, 1, 2, 3, 4, 3, 2, 1, 0, 1]
    assert [source_index(k, n, "loop") for k in range(10)] == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]
    assert [source_index(k, n, "freeze") for k in range(8)] == [0, 1, 2, 3, 4, 4, 4, 4]
    with pytest.raises(InputError) as err:
        source_index(6, n, "sideways")
    assert err.value.field == "length_mode"


def test_every_mode_but_cut_audio_lasts_as_long_as_the_audio(dubs, long_speech):
    speech = len(load_audio(long_speech, "audio", 16000)) / 16000
    for mode in ("bounce", "loop", "freeze"):
        record, frames = dubs[mode]
        assert abs(len(frames) / 25 - speech) <= 1 / 25 + 1e-6, mode
        assert record.duration == pytest.approx(speech, abs=0.04)


def test_freeze_holds_the_last_frame(dubs):
    frames = dubs["freeze"][1]
    n = 30
    moving = diff(frames[n - 1], frames[n - 6])  # the pan moves 8 px in 5 frames
    assert moving > 4
    assert max(diff(frames[n - 1], f) for f in frames[n:]) < 0.2 * moving


def test_loop_starts_over_and_bounce_turns_back(dubs):
    n = 30
    loop, bounce = dubs["loop"][1], dubs["bounce"][1]
    jump = diff(loop[0], loop[n - 1])
    assert jump > 10
    assert diff(loop[n], loop[0]) < 0.2 * jump  # the frame after the video's end is frame 0 again
    assert diff(loop[n + 7], loop[7]) < 0.2 * jump
    assert diff(bounce[n], bounce[n - 2]) < 0.2 * jump  # bounce: back from the last frame instead
    assert diff(bounce[n], bounce[0]) > 0.8 * jump


def test_cut_audio_stops_at_the_video_end(dubs, tmp_path):
    record, frames = dubs["cut_audio"]
    assert len(frames) == 30
    assert record.duration == pytest.approx(1.2, abs=0.02)
    with av.open(record.output) as c:
        assert float(c.duration / 1e6) == pytest.approx(1.2, abs=0.06)  # the audio is cut too
    # The hosted API would bill the whole speech (5 s minimum at 480p = 10 credits here, whatever the cut).
    assert record.credits == dubs["bounce"][0].credits


def test_background_is_kept_at_the_requested_level(panning_tone_video, long_speech, tmp_path):
    sr = 48000
    source = tone_level(load_audio(panning_tone_video, "video", sr), sr, 0.1, 1.1)
    assert source == pytest.approx(TONE_AMP, rel=0.1)
    levels = {}
    for db in (-6.0, -18.0):
        out = tmp_path / f"bg{db:g}.mp4"
        record = run_job(VideoRequest(video=str(panning_tone_video), audio=str(long_speech), keep_background=db),
                         out_path=out)
        assert record.status == "completed", record.error
        levels[db] = 20 * np.log10(tone_level(load_audio(out, "video", sr), sr, 0.1, 1.1) / source)
    assert levels[-6.0] == pytest.approx(-6.0, abs=1.0)
    assert levels[-18.0] == pytest.approx(-18.0, abs=1.5)
    plain = tmp_path / "plain.mp4"
    assert run_job(VideoRequest(video=str(panning_tone_video), audio=str(long_speech)), out_path=plain).status == "completed"
    assert tone_level(load_audio(plain, "video", sr), sr, 0.1, 1.1) / source < 10 ** (-30 / 20)  # dropped by default


def test_background_needs_an_audio_track(tmp_path, astronaut_png, long_speech):
    silent = tmp_path / "mute.mp4"
    run_ffmpeg("-loop", "1", "-i", str(astronaut_png), "-t", "1", "-r", "25", "-vf", "scale=320:320,format=yuv420p",
               "-c:v", "libx264", str(silent))
    record = run_job(VideoRequest(video=str(silent), audio=str(long_speech), keep_background=-12), out_path=tmp_path / "o.mp4")
    assert record.status == "failed" and record.error.startswith("keep_background: ")
    assert not (tmp_path / "o.mp4").exists()


def test_compare_is_the_source_beside_the_dub(panning_tone_video, long_speech, tmp_path):
    out = tmp_path / "dub.mp4"
    record = run_job(VideoRequest(video=str(panning_tone_video), audio=str(long_speech), length_mode="loop",
                                  compare=True), out_path=out)
    assert record.status == "completed", record.error
    assert record.compare == str(tmp_path / "dub.compare.mp4")
    both, dub = frames_of(Path(record.compare)), frames_of(out)
    h, w = dub[0].shape[:2]
    assert both[0].shape == (h, 2 * w, 3)
    assert abs(len(both) - len(dub)) <= 1
    k = 37  # past the video's end: the left half shows the looped source, like the dub's frame
    assert diff(both[k][:, :w], dub[k]) < 3 and diff(both[k][:, w:], dub[k]) < 3
    with av.open(record.compare) as c:
        assert c.streams.audio, "the compare file carries the dub's audio"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dub.compare.mp4", "dub.mp4"]  # no temp files left


def test_bad_length_mode_is_an_input_error_naming_the_field():
    with pytest.raises(InputError) as err:
        parse_request("lipsync-video", {"video": "a.mp4", "audio": "b.wav", "length_mode": "stretch"})
    assert err.value.field == "length_mode" and "cut_audio" in str(err.value)
    with pytest.raises(InputError) as err:
        parse_request("lipsync-video", {"video": "a.mp4", "audio": "b.wav", "keep_background": "loud"})
    assert err.value.field == "keep_background"


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "LIPSYNC_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "lipsync.cli", *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=300)


def test_cli_length_mode_options(tmp_path, lipsync_home, panning_tone_video, long_speech):
    help_text = _cli("video", "--help", home=lipsync_home).stdout
    for word in ("--length-mode", "--keep-background", "--compare", *LENGTH_MODES):
        assert word in help_text
    bad = _cli("video", "--video", str(panning_tone_video), "--audio", str(long_speech), "--length-mode", "stretch",
               "--out", str(tmp_path / "o.mp4"), home=lipsync_home)
    assert bad.returncode == 1 and bad.stderr.strip().startswith("error: length_mode: "), bad.stderr
    out = tmp_path / "cli.mp4"
    ok = _cli("video", "--video", str(panning_tone_video), "--audio", str(long_speech), "--length-mode", "cut_audio",
              "--keep-background", "-18", "--compare", "--out", str(out), home=lipsync_home)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.split() == [str(out), str(tmp_path / "cli.compare.mp4")]
    assert len(frames_of(out)) == 30
    cost = _cli("cost", "video", "--video", str(panning_tone_video), "--audio", str(long_speech), "--length-mode",
                "cut_audio", "--json", home=lipsync_home)
    assert cost.returncode == 0, cost.stderr
    rule = json.loads(cost.stdout)["rule"]
    assert "cut_audio" in rule and "bills the whole audio" in rule


def test_rest_refuses_an_unknown_length_mode_naming_the_field(tmp_path):
    import httpx

    from lipsync.server import ServerSettings, create_app
    from lipsync.server.keys import create_key
    from test_server import serve_app

    key, _ = create_key("tests", home=tmp_path)
    with serve_app(create_app(ServerSettings(allow_private_urls=True), home=tmp_path)) as url:
        with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
            state = {"video": "http://127.0.0.1/a.mp4", "audio": "http://127.0.0.1/a.wav"}
            for field, value in (("length_mode", "stretch"), ("keep_background", "loud")):
                response = client.post(f"{url}/api/v1/lipsync-video", json={"formState": {**state, field: value}})
                assert response.status_code == 400
                assert response.json()["field"] == field and response.json()["error"].startswith(f"{field}: ")
            form = client.post(f"{url}/api/v1/lipsync-video", data={**state, "keep_background": "-300"})
            assert form.status_code == 400 and form.json()["field"] == "keep_background"


def test_batch_csv_cells_carry_the_options(tmp_path):
    from lipsync.jobs import batch

    source = tmp_path / "jobs.csv"
    source.write_text("video,audio,length_mode,keep_background,compare\n"
                      "a.mp4,a.wav,freeze,-18,true\nb.mp4,b.wav,stretch,,\nc.mp4,c.wav,,loud,\n")
    good, stretch, loud = batch.plan(batch.read_rows(source), tmp_path / "out", lambda name, value: value)
    assert good.status == "pending", good.error
    assert (good.request.length_mode, good.request.keep_background, good.request.compare) == ("freeze", -18.0, True)
    assert stretch.error.startswith("row 2: length_mode: 'stretch' is not allowed")
    assert loud.error == "row 3: keep_background: 'loud' is not allowed; expected a number"


def test_studio_video_tab_fields_cost_and_checks(panning_tone_video, long_speech):
    from lipsync.ui import events, forms
    from lipsync.ui.studio import Limits

    form = {"video": str(panning_tone_video), "audio": str(long_speech), "resolution": "480p"}
    cut = events.cost_text("video", {**form, "length_mode": "cut_audio"})
    assert "cut_audio" in cut and "bills the whole audio" in cut and "10 credits" in cut
    assert "locally by loop" in events.cost_text("video", {**form, "length_mode": "loop"})
    request = forms.to_request("video", {**form, "length_mode": "freeze", "keep_background": "-18", "compare": True},
                               persist=False)
    assert (request.length_mode, request.keep_background, request.compare) == ("freeze", -18.0, True)
    assert forms.to_request("video", {**form, "keep_background": ""}, persist=False).keep_background is None
    problems = forms.check_form("video", {**form, "length_mode": "stretch", "keep_background": "loud"}, Limits())
    assert set(problems) == {"length_mode", "keep_background"}
    with pytest.raises(InputError) as err:
        forms.to_request("video", {**form, "length_mode": "stretch"}, persist=False)
    assert err.value.field == "length_mode"
    # History's re-open gives the same form back.
    mode, again = forms.form_from_request(request.model_dump())
    assert mode == "video" and again["length_mode"] == "freeze" and again["keep_background"] == -18.0


def test_mirror_sends_no_local_length_fields():
    from lipsync.remote.mirror import hosted_form_state

    request = VideoRequest(video="https://example.com/v.mp4", audio="https://example.com/a.wav", length_mode="cut_audio",
                           keep_background=-18, compare=True)
    state = hosted_form_state(request)
    assert state == {"video": "https://example.com/v.mp4", "audio": "https://example.com/a.wav", "resolution": "480p"}
