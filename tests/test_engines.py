"""`engines.check_request`: a request against what an engine declares, and its three availability states.

Test engines are real modules registered under a name (as a neural engine would be); the one that needs
a download reads its weights from a hub cache laid out in the test, under HF_HUB_OFFLINE=1.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from lipsync import engines
from lipsync.engines.base import Availability, EngineSpec, FrameBatch
from lipsync.errors import EngineError, InputError
from lipsync.models import WeightFile, WeightRepo, hub
from lipsync.requests import ImageRequest, MultiRequest, VideoRequest

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO = WeightRepo("test-org/tiny-net", (WeightFile("unet/model.safetensors", 64), WeightFile("config.json", 2)), "mit")


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty hub cache of this test's own."""
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))  # lipsync.models.hub reads the environment at each call
    return cache


def lay_out(cache, repo: WeightRepo) -> None:
    """The repo's files in the cache as huggingface_hub writes them: blobs, a snapshot, refs/main."""
    root = cache / f"models--{repo.repo_id.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(COMMIT)
    for f in repo.files:
        blob = root / "blobs" / f"blob{len(f.path)}"
        blob.parent.mkdir(exist_ok=True)
        blob.write_bytes(b"x" * f.size)
        link = root / "snapshots" / COMMIT / f.path
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(blob)


def register(monkeypatch, name: str, availability, *, options=("resolution",), weights=(), modes=("lipsync-image",)):
    module = types.ModuleType(f"test_engine_{name}")
    module.SPEC = EngineSpec(name, name.title(), "A test engine.", modes=frozenset(modes), options=frozenset(options),
                             resolutions=("480p",), weights=weights, code_licence="MIT")
    module.availability = availability
    module.frame_cost = lambda: None  # every engine says what a frame costs; None: fast enough not to warn
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(engines.KNOWN_ENGINES, name, module.__name__)
    return module


def image(**options) -> ImageRequest:
    return ImageRequest(image="face.png", audio="speech.wav", **options)


def weights_availability() -> Availability:
    """Ready once the repo resolved to a commit in LIPSYNC_HOME (what a first download records)."""
    if REPO.repo_id in hub.read_pins():
        return Availability("ready")
    return Availability("download", missing=tuple(f"{REPO.repo_id}/{f.path}" for f in REPO.files),
                        download_bytes=REPO.size)


def test_builtin_accepts_every_option_of_every_kind():
    builtin = engines.get_engine("builtin")
    for request in (image(prompt="calm", seed=3, mask_image="m.png", transcript="hi", resolution="720p"),
                    VideoRequest(video="v.mp4", audio="a.wav", transcript="hi"),
                    MultiRequest(image="two.png", left_audio="l.wav", right_audio="r.wav", left_transcript="a")):
        engines.check_request(builtin, request)
        engines.check_request(builtin.SPEC, request)  # a spec alone finds its engine


@pytest.mark.parametrize("options,field", [
    (dict(prompt="calm"), "prompt"), (dict(seed=1), "seed"), (dict(mask_image="m.png"), "mask_image"),
    (dict(transcript="hello"), "transcript"), (dict(resolution="720p"), "resolution"),
])
def test_an_undeclared_option_names_its_field(monkeypatch, options, field):
    engine = register(monkeypatch, "plain", lambda: Availability("ready"))
    with pytest.raises(InputError) as err:
        engines.check_request(engine, image(**options))
    assert err.value.field == field and "plain" in err.value.problem


def test_dialogue_transcripts_need_the_transcript_option(monkeypatch):
    engine = register(monkeypatch, "plain", lambda: Availability("ready"), modes=("lipsync-image-multi",))
    request = MultiRequest(image="two.png", left_audio="l.wav", right_audio="r.wav", right_transcript="bye")
    with pytest.raises(InputError) as err:
        engines.check_request(engine, request)
    assert err.value.field == "right_transcript"


def test_an_undeclared_mode_is_refused(monkeypatch):
    engine = register(monkeypatch, "images", lambda: Availability("ready"))
    with pytest.raises(EngineError, match="images cannot render lipsync-video"):
        engines.check_request(engine, VideoRequest(video="v.mp4", audio="a.wav"))


def test_unavailable_says_why(monkeypatch):
    engine = register(monkeypatch, "nogpu", lambda: Availability("unavailable", "diffusers is not installed"))
    with pytest.raises(EngineError, match="nogpu is not available: diffusers is not installed"):
        engines.check_request(engine, image(), allow_download=True)


def test_a_needed_download_not_allowed_says_what_to_run(monkeypatch, hub_cache):
    engine = register(monkeypatch, "neural", weights_availability, weights=(REPO,))
    with pytest.raises(EngineError) as err:
        engines.check_request(engine, image())
    message = str(err.value)
    assert "\n" not in message
    assert "test-org/tiny-net/unet/model.safetensors" in message and "test-org/tiny-net/config.json" in message
    assert "`lipsync models download neural`" in message and "builtin engine works offline" in message
    assert "66 B" in message
    assert not hub.read_pins()  # nothing was fetched


def test_an_allowed_download_offline_with_nothing_cached_fails_with_the_command(monkeypatch, hub_cache):
    engine = register(monkeypatch, "neural", weights_availability, weights=(REPO,))
    seen = []
    with pytest.raises(EngineError) as err:
        engines.check_request(engine, image(), allow_download=True, progress=lambda f, stage: seen.append((f, stage)))
    assert "`lipsync models download neural`" in str(err.value) and "download failed" in str(err.value)
    assert seen == [(0.0, "download")]


def test_an_allowed_download_runs_first_with_progress_then_the_engine_is_ready(monkeypatch, hub_cache):
    other = WeightRepo("test-org/audio", (WeightFile("audio.bin", 8),), "apache-2.0")
    lay_out(hub_cache, REPO)
    lay_out(hub_cache, other)
    engine = register(monkeypatch, "neural", weights_availability, weights=(REPO, other))
    seen = []
    engines.check_request(engine, image(), allow_download=True, progress=lambda f, stage: seen.append((f, stage)))
    assert seen[0] == (0.0, "download") and seen[-1] == (1.0, "download")
    assert hub.read_pins() == {REPO.repo_id: COMMIT, other.repo_id: COMMIT}
    engines.check_request(engine, image())  # ready now, no download needed


def test_licences_list_code_and_each_weight_repo(monkeypatch):
    engine = register(monkeypatch, "neural", weights_availability, weights=(REPO,))
    assert engines.licences(engine.SPEC) == "code MIT; weights: test-org/tiny-net mit"
    assert engines.licences(engines.get_engine("builtin").SPEC) == "code Apache-2.0"


def test_builtin_render_batch_is_its_render_per_frame(astronaut):
    """render_batch of frames start.. equals render(frame, start + i) one by one (a still's cache and
    blinks are keyed by the frame index)."""
    import cv2

    from lipsync.engines.base import RenderPlan, Speaker
    from lipsync.face import FaceAnalyzer
    from lipsync.speech import analyze_speech

    still = cv2.resize(astronaut, (480, 480), interpolation=cv2.INTER_AREA)
    with FaceAnalyzer() as analyzer:
        face = analyzer.detect(still)[0]
    t = np.arange(16000 * 2) / 16000
    speech = (0.3 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32)
    track = analyze_speech(speech, 16000, 50, 25)
    builtin = engines.get_engine("builtin")
    plan = RenderPlan(model="lipsync-image", size=(480, 480), fps=25, n_frames=50,
                      speakers=[Speaker(track, face, audio=speech)], seed=4)
    one, batched = builtin.renderer(None, plan), builtin.renderer(None, plan)
    expected = [one.render(still, i, [face]) for i in range(10, 16)]
    got = batched.render_batch(FrameBatch(10, [still] * 6, [[face]] * 6))
    assert len(got) == 6 and all(np.array_equal(a, b) for a, b in zip(expected, got))
    assert any(not np.array_equal(got[0], g) for g in got[1:])  # the frames do differ


def test_cli_engines_lists_each_state_with_size_and_licences(monkeypatch, capsys, hub_cache):
    from lipsync import cli

    register(monkeypatch, "neural", weights_availability, weights=(REPO,))
    register(monkeypatch, "nogpu", lambda: Availability("unavailable", "diffusers is not installed"))
    assert cli.main(["engines"]) == 0
    out = capsys.readouterr().out
    assert "builtin: Built-in (fast, offline) [ready]" in out and "code Apache-2.0" in out
    assert "neural: Neural [needs download 66 B: lipsync models download neural]" in out
    assert "code MIT; weights: test-org/tiny-net mit" in out
    assert "nogpu: Nogpu [unavailable: diffusers is not installed]" in out


@pytest.mark.parametrize("flag,words", [("--no-download", "needs a download"), ("--download", "download failed")])
def test_cli_render_with_missing_weights_says_what_to_run(monkeypatch, capsys, hub_cache, flag, words):
    """Offline, both ways end in one line naming the command; the engine is checked before any media."""
    from lipsync import cli

    register(monkeypatch, "neural", weights_availability, weights=(REPO,))
    code = cli.main(["image", "--image", "face.png", "--audio", "speech.wav", "--engine", "neural", flag, "--quiet"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_FAILED and err.count("\n") == 1
    assert words in err and "`lipsync models download neural`" in err and "Traceback" not in err


# -- the pipeline's side of the interface, with an engine that paints each frame's index ------------------


def register_painter(monkeypatch, *, batch_size: int, parallel: bool, calls: list):
    """An engine whose frame i is flat grey (4 * i) % 256, so order survives encoding; it records what
    the pipeline hands it."""
    import threading

    class Painter:
        def __init__(self, plan):
            self.plan = plan

        def render(self, frame, index, faces):
            return np.full_like(frame, (4 * index) % 256)

        def render_batch(self, batch):
            calls.append((batch.start, len(batch), [len(f) for f in batch.faces], threading.current_thread().name))
            return [self.render(frame, batch.start + i, faces)
                    for i, (frame, faces) in enumerate(zip(batch.frames, batch.faces))]

    module = register(monkeypatch, "painter", lambda: Availability("ready"),
                      options=("resolution", "seed", "transcript"),
                      modes=("lipsync-video", "lipsync-image", "lipsync-image-multi"))
    module.SPEC = EngineSpec("painter", "Painter", "A test engine.", modes=module.SPEC.modes,
                             options=module.SPEC.options, batch_size=batch_size, parallel=parallel)
    module.plans = []
    module.load = lambda progress, *, allow_download: "weights"
    module.parse_prompt = lambda prompt: (None, [])

    def renderer(model, plan):
        assert model == "weights"
        module.plans.append(plan)
        return Painter(plan)

    module.renderer = renderer
    return module


def decoded_levels(path) -> list[float]:
    import av

    with av.open(str(path)) as c:
        return [float(f.to_ndarray(format="gray").mean()) for f in c.decode(video=0)]


@pytest.fixture(scope="module")
def short_line(media_dir):
    from conftest import make_speech

    return make_speech(media_dir / "engines_short.wav", "Bob paid.")


@pytest.mark.parametrize("parallel", [False, True])
def test_pipeline_hands_frames_in_batches_in_order(monkeypatch, parallel, astronaut_png, short_line, tmp_path):
    from lipsync.pipeline import render

    calls: list = []
    register_painter(monkeypatch, batch_size=3, parallel=parallel, calls=calls)
    progress: list = []
    result = render(ImageRequest(image=str(astronaut_png), audio=str(short_line), engine="painter", seed=1),
                    tmp_path / "o.mp4", progress=lambda f, stage: progress.append((f, stage)))
    n = result.n_frames
    assert sorted(c[0] for c in calls) == list(range(0, n, 3))
    assert all(size == min(3, n - start) and faces == [1] * size for start, size, faces, _ in calls)
    assert any(c[3].startswith("lipsync-render") for c in calls) == parallel
    levels = decoded_levels(tmp_path / "o.mp4")
    assert len(levels) == n and max(abs(level - (4 * i) % 256) for i, level in enumerate(levels)) < 2
    rendering = [f for f, stage in progress if stage == "render"][1:]  # after the one at the step's start
    assert len(rendering) == len(calls) and rendering == sorted(rendering)


def test_pipeline_checks_cancel_per_batch(monkeypatch, astronaut_video, short_line, tmp_path):
    from lipsync.errors import Cancelled
    from lipsync.pipeline import render

    calls: list = []
    register_painter(monkeypatch, batch_size=4, parallel=False, calls=calls)
    out = tmp_path / "o.mp4"
    with pytest.raises(Cancelled):
        render(VideoRequest(video=str(astronaut_video), audio=str(short_line), engine="painter"), out,
               cancel=lambda: len(calls) >= 2)
    assert [c[:2] for c in calls] == [(0, 4), (4, 4)] and not out.exists()


def test_each_dialogue_speaker_gets_its_own_line(monkeypatch, two_people_png, short_line, speech_wav_2, tmp_path):
    from lipsync.pipeline import AUDIO_RATE, render

    engine = register_painter(monkeypatch, batch_size=8, parallel=True, calls=[])
    render(MultiRequest(image=str(two_people_png), left_audio=str(short_line), right_audio=str(speech_wav_2),
                        order="left_right", engine="painter"), tmp_path / "o.mp4")
    (plan,) = engine.plans
    left, right = (sp.audio for sp in plan.speakers)
    assert [sp.role for sp in plan.speakers] == ["left", "right"]
    assert len(left) == len(right) == len(plan.audio) and np.allclose(left + right, plan.audio, atol=1e-6)
    n_left = int(np.nonzero(left)[0][-1]) + 1  # the left line ends where the right one starts
    assert np.abs(right[: n_left - AUDIO_RATE // 10]).max() == 0 and np.abs(left[n_left:]).max() == 0
    assert np.abs(left).max() > 0.05 and np.abs(right).max() > 0.05


def test_the_rest_api_refuses_what_the_engine_does_not_support_at_submission(monkeypatch):
    """The REST API reads the same declaration: a 400 naming the field, before anything is queued."""
    from starlette.testclient import TestClient

    from lipsync.server import create_app, keys

    register(monkeypatch, "plain", lambda: Availability("ready"))  # supports the resolution only
    key, _ = keys.create_key("t")
    monkeypatch.setenv("LIPSYNC_ALLOW_PRIVATE_URLS", "1")  # no DNS lookups for the example URLs
    with TestClient(create_app()) as client:
        auth = {"Authorization": f"Bearer {key}"}
        body = {"formState": {"image": "https://example.org/face.png", "audio": "https://example.org/a.wav",
                              "engine": "plain", "prompt": "smile"}}
        response = client.post("/api/v1/lipsync-image", json=body, headers=auth)
        assert response.status_code == 400, response.text
        assert "prompt" in response.text and "not supported by the plain engine" in response.text
        body["formState"].pop("prompt")
        body["formState"]["resolution"] = "720p"
        response = client.post("/api/v1/lipsync-image", json=body, headers=auth)
        assert response.status_code == 400 and "resolution" in response.text
        response = client.post("/api/v1/lipsync-video", json={"formState": {
            "video": "https://example.org/v.mp4", "audio": "https://example.org/a.wav", "engine": "plain"}}, headers=auth)
        assert response.status_code == 400 and "engine" in response.text and "cannot render" in response.text
