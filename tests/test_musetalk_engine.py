"""The MuseTalk engine behind the engine interface: availability from the hub cache, the offline message,
and whole jobs through `pipeline.render` on tiny random models laid out as a hub cache (HF_HUB_OFFLINE=1)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from lipsync import engines
from lipsync.engines import musetalk
from lipsync.engines.base import FrameBatch, RenderPlan, Speaker
from lipsync.engines.musetalk import engine as E
from lipsync.engines.musetalk import geometry as G
from lipsync.engines.musetalk import weights as W
from lipsync.errors import EngineError, InputError
from lipsync.requests import ImageRequest, VideoRequest

from musetalk_hub import make_hub, tiny_state_dicts


def use_cache(monkeypatch, cache) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))  # lipsync.models.hub reads the environment at each call


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    cache.mkdir()
    use_cache(monkeypatch, cache)
    return cache


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory):
    return make_hub(tmp_path_factory.mktemp("hub"), tiny_state_dicts())


@pytest.fixture
def tiny_hub(tiny_cache, monkeypatch):
    """The tiny MuseTalk models, laid out as a hub cache, in use for this test."""
    use_cache(monkeypatch, tiny_cache)
    return tiny_cache


@pytest.fixture(scope="module")
def one_second_line(media_dir):
    from conftest import make_speech

    return make_speech(media_dir / "musetalk_line.wav", "Bob paid.")


@pytest.fixture
def batch_sizes(monkeypatch):
    """The length of every batch the pipeline hands the MuseTalk renderer."""
    sizes: list[int] = []
    real = E.MuseTalkRenderer.render_batch

    def recording(self, batch):
        sizes.append(len(batch))
        return real(self, batch)

    monkeypatch.setattr(E.MuseTalkRenderer, "render_batch", recording)
    return sizes


def decoded(path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def luma_psnr(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    ya, yb = (cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).astype(np.float64)[where] for x in (a, b))
    mse = float(np.mean((ya - yb) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def face_geometry(frame: np.ndarray):
    """(68 points, MuseTalk box, lower-face mask) of the largest face in `frame`, found as the pipeline does."""
    from lipsync.face import FaceAnalyzer

    with FaceAnalyzer() as analyzer:
        face = max(analyzer.detect(frame), key=lambda f: f.size)
    points = E.ibug68(face.landmarks)
    box = G.crop_box(points, frame.shape)
    return points, box, G.lower_face_mask(points, box, frame.shape)


def regions(shape, box, mask, points):
    """Boolean maps: far from the face (outside the 1.5x square), the upper face (box rows above point 29),
    and the mask's solid lower face."""
    far = np.ones(shape[:2], bool)
    x1, y1, x2, y2 = G.expand_box(box)
    far[max(y1, 0):y2, max(x1, 0):x2] = False
    upper = np.zeros(shape[:2], bool)
    upper[box[1]:int(points[G.NOSE_BRIDGE, 1]), box[0]:box[2]] = True
    lower = np.zeros(shape[:2], bool)
    rx1, ry1, rx2, ry2 = mask.region
    lower[ry1:ry2, rx1:rx2] = mask.alpha > 0.9
    return far, upper, lower


# ---- declarations and availability

def test_spec_declares_what_musetalk_really_supports():
    spec = engines.get_engine("musetalk").SPEC
    assert spec.weights == W.WEIGHTS and spec.code_licence == "MIT" and spec.batch_size == 8 and not spec.parallel
    assert spec.modes == {"lipsync-video", "lipsync-image", "lipsync-image-multi"}
    assert spec.options == {"resolution", "mask_image"}  # no seed: the latents are the posterior's mode
    with pytest.raises(InputError, match="not supported by the musetalk engine"):
        engines.check_options(spec, ImageRequest(image="a.png", audio="a.wav", engine="musetalk", seed=3))


def test_availability_names_each_missing_file_and_its_size(empty_cache):
    available = musetalk.availability()
    assert available.state == "download"
    assert set(available.missing) == {f"{r.repo_id}/{f.path}" for r in W.WEIGHTS for f in r.files}
    assert available.download_bytes == sum(r.size for r in W.WEIGHTS)
    make_hub(empty_cache, tiny_state_dicts(), skip=(W.UNET_WEIGHTS,))
    available = musetalk.availability()
    assert available.missing == ("TMElyralab/MuseTalk/musetalkV15/unet.pth",)
    assert available.download_bytes == 3_400_000_000


def test_availability_is_ready_when_the_cache_holds_every_file(tiny_hub):
    assert musetalk.availability().state == "ready"


def test_a_vae_pickle_left_by_another_tool_counts_as_downloaded(empty_cache):
    make_hub(empty_cache, tiny_state_dicts(), vae_file="diffusion_pytorch_model.bin")
    assert musetalk.availability().state == "ready"


def test_unavailable_without_the_neural_stack_says_which_package(monkeypatch):
    monkeypatch.setattr(E, "NEEDS", ("torch", "diffusers_that_is_not_installed"))
    available = musetalk.availability()
    assert available.state == "unavailable" and "diffusers_that_is_not_installed not installed" in available.reason


def test_offline_a_request_fails_with_one_line_naming_files_and_command(empty_cache):
    request = ImageRequest(image="face.png", audio="speech.wav", engine="musetalk")
    with pytest.raises(EngineError) as err:
        engines.check_request(engines.get_engine("musetalk"), request, allow_download=False)
    text = str(err.value)
    assert "\n" not in text and "musetalkV15/unet.pth" in text and "openai/whisper-tiny/model.safetensors" in text
    assert "`lipsync models download musetalk`" in text and "builtin engine works offline" in text


def test_cli_engines_shows_musetalk_needs_a_download_with_licences(empty_cache, capsys):
    from lipsync import cli

    assert cli.main(["engines"]) == 0
    out = capsys.readouterr().out
    assert "musetalk: MuseTalk 1.5 (neural) [needs download 3.9 GB: lipsync models download musetalk]" in out
    assert "code MIT; weights: TMElyralab/MuseTalk creativeml-openrail-m" in out


# ---- the adapter

def test_facemesh_to_68_points_keeps_the_ibug_layout(astronaut):
    """On a real face: the jaw runs image-left → chin → image-right, 29 lies between the eyes and the
    nose tip, the lips below the nose, and MuseTalk's box covers the face."""
    from lipsync.face import FaceAnalyzer

    with FaceAnalyzer() as analyzer:
        face = max(analyzer.detect(astronaut), key=lambda f: f.size)
    p = E.ibug68(face.landmarks)
    assert len(set(E.IBUG68.tolist())) == 68
    assert np.all(np.diff(p[0:9, 0]) > 0) and np.all(np.diff(p[8:17, 0]) > 0)  # left to right
    assert p[8, 1] == p[:, 1].max()  # the chin is the lowest point
    assert p[27, 1] < p[28, 1] < p[29, 1] < p[30, 1] < p[51, 1] < p[57, 1] < p[8, 1]
    assert p[36, 0] < p[39, 0] < p[42, 0] < p[45, 0] and p[48, 0] < p[54, 0]
    x1, y1, x2, y2 = G.crop_box(p, astronaut.shape)
    fx1, fy1, fx2, fy2 = face.box
    assert x1 <= fx1 + 5 and x2 >= fx2 - 5 and y2 >= fy2  # the width of the face, chin + margin
    assert y1 < p[37, 1]  # the crop's top is above the eyes


def test_talking_weights_ramp_around_voice_activity():
    speech = np.zeros(30, bool)
    speech[10:12] = True
    w = E.talking_weights(speech, 30, pad=3)
    assert (w[7:15] == 1).all() and w[0] == 0 and w[-1] == 0
    assert 0 < w[5] < w[6] < 1 and 0 < w[16] < w[15] < 1
    assert not E.talking_weights(np.zeros(5, bool), 8).any()


def test_a_listening_face_and_a_frame_without_faces_pass_through(tiny_hub, two_people_png):
    """Dialogue: each speaker's face hears its own line; the one not talking keeps its mouth."""
    from lipsync.face import FaceAnalyzer
    from lipsync.media.video import read_image
    from lipsync.speech.track import MouthTrack

    still = read_image(two_people_png, "image")
    with FaceAnalyzer() as analyzer:
        faces = sorted(analyzer.detect(still), key=lambda f: f.centre[0])[:2]
    n = 8
    rng = np.random.default_rng(5)

    def track(talks: bool) -> MouthTrack:
        z = np.zeros(n, np.float32)
        return MouthTrack(25, z, z, z, np.full(n, talks), [], "acoustic")

    line = (0.3 * rng.standard_normal(16000 * n // 25)).astype(np.float32)
    speakers = [Speaker(track(True), faces[0], "left", audio=line),
                Speaker(track(False), faces[1], "right", audio=np.zeros_like(line))]
    h, w = still.shape[:2]
    plan = RenderPlan("lipsync-image-multi", (w, h), 25, n, speakers, seed=0, audio=line)
    renderer = musetalk.renderer(musetalk.load(None, allow_download=False), plan)
    out = renderer.render_batch(FrameBatch(0, [still] * 3, [[faces[0], faces[1]], [None, None], [faces[0], faces[1]]]))
    assert out[1] is still  # no face: the frame itself
    for k, changed in ((0, True), (1, False)):
        points = E.ibug68(faces[k].landmarks)
        box = G.crop_box(points, still.shape)
        x1, y1, x2, y2 = G.expand_box(box)
        region = (slice(max(y1, 0), y2), slice(max(x1, 0), x2))
        diff = np.abs(out[0][region].astype(int) - still[region].astype(int)).mean()
        assert (diff > 2) == changed, (k, diff)
    again = renderer.render_batch(FrameBatch(0, [still], [[faces[0], faces[1]]]))[0]
    assert np.abs(again.astype(int) - out[0]).max() <= 2  # the same frame again (kernel choice: +-1 or 2 levels)


# ---- whole jobs through the pipeline

def test_an_image_job_renders_every_frame_and_changes_only_the_lower_face(tiny_hub, astronaut_png,
                                                                         one_second_line, batch_sizes, tmp_path):
    from lipsync.media.video import read_image
    from lipsync.pipeline import render

    out = tmp_path / "image.mp4"
    result = render(ImageRequest(image=str(astronaut_png), audio=str(one_second_line), engine="musetalk"), out)
    frames = decoded(out)
    assert result.engine == "musetalk" and len(frames) == result.n_frames >= 20
    assert sum(batch_sizes) == result.n_frames and max(batch_sizes) <= 8
    h, w = frames[0].shape[:2]
    still = cv2.resize(read_image(astronaut_png, "image"), (w, h), interpolation=cv2.INTER_AREA)
    points, box, mask = face_geometry(still)
    far, upper, lower = regions(still.shape, box, mask, points)
    assert min(luma_psnr(f, still, far) for f in frames) >= 40
    assert min(luma_psnr(f, still, upper) for f in frames) >= 40  # the eyes and nose are untouched
    changes = [np.abs(f[lower].astype(int) - still[lower].astype(int)).mean() for f in frames]
    assert max(changes) > 10  # the mouth is repainted while the line is spoken


def test_a_video_dub_renders_every_frame_and_changes_only_the_lower_face(tiny_hub, astronaut_video,
                                                                        one_second_line, batch_sizes, tmp_path):
    from lipsync.media.video import VideoSource
    from lipsync.pipeline import render

    out = tmp_path / "dub.mp4"
    result = render(VideoRequest(video=str(astronaut_video), audio=str(one_second_line), engine="musetalk"), out)
    frames = decoded(out)
    assert len(frames) == result.n_frames >= 20 and result.faces_found == result.n_frames
    assert sum(batch_sizes) == result.n_frames and max(batch_sizes) <= 8
    h, w = frames[0].shape[:2]
    with VideoSource(astronaut_video, "video", (w, h), 25) as source:
        sources = list(source.frames(result.n_frames))
    # The head pans a few pixels: measure each frame against its own source, around the first frame's face.
    points, box, mask = face_geometry(sources[0])
    far, upper, lower = regions(sources[0].shape, box, mask, points)
    margin = np.zeros_like(far)
    margin[24:-24, 24:-24] = True  # clear of the pan's border
    far &= margin
    assert min(luma_psnr(f, s, far) for f, s in zip(frames, sources)) >= 40
    shrink = cv2.erode(upper.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)  # the pan moves the box
    assert min(luma_psnr(f, s, shrink) for f, s in zip(frames, sources)) >= 40
    changes = [np.abs(f[lower].astype(int) - s[lower].astype(int)).mean() for f, s in zip(frames, sources)]
    assert min(changes) > 10  # a dub repaints every frame with a face

