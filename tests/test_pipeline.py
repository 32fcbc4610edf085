"""End-to-end jobs through `run_job`, checked on the decoded output (real media, no mocks)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from conftest import make_speech, run_ffmpeg, save_rgb
from lipsync import ImageRequest, MultiRequest, VideoRequest, run_job
from lipsync.face import FaceAnalyzer
from lipsync.face.regions import mouth_opening


def decode(path: Path) -> tuple[list[np.ndarray], dict]:
    with av.open(str(path)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        info = {"codec": v.codec_context.name, "pix_fmt": v.codec_context.pix_fmt, "fps": float(v.average_rate),
                "audio_codec": a.codec_context.name, "duration": float(c.duration / 1e6)}
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    return frames, info


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Luma PSNR, as video codecs are judged."""
    import cv2

    ya, yb = (cv2.cvtColor(np.ascontiguousarray(x), cv2.COLOR_RGB2YUV)[..., 0].astype(np.float64) for x in (a, b))
    mse = np.mean((ya - yb) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def audio_seconds(path: Path) -> float:
    info = sf.info(str(path))
    return info.frames / info.samplerate


@pytest.fixture(scope="module")
def short_speech(media_dir) -> Path:
    return make_speech(media_dir / "short.wav", "Maybe, mom. [[_:450]] Bob paid.")


@pytest.fixture(scope="module")
def image_job(tmp_path_factory, astronaut_png, short_speech):
    out = tmp_path_factory.mktemp("image") / "out.mp4"
    record = run_job(ImageRequest(image=str(astronaut_png), audio=str(short_speech), seed=7), out_path=out)
    return record, out


def test_image_job_output_is_browser_playable_and_follows_the_audio(image_job, short_speech):
    record, out = image_job
    assert record.status == "completed", record.error
    assert record.model == "lipsync-image" and record.output == str(out)
    assert set(record.timings) == {"decode", "analysis", "render", "encode"}
    assert record.executionTime > 0 and record.credits == 10
    frames, info = decode(out)
    assert (info["codec"], info["pix_fmt"], info["audio_codec"]) == ("h264", "yuv420p", "aac")
    assert info["fps"] == 25
    h, w = frames[0].shape[:2]
    assert min(h, w) == 480 and h % 2 == 0 and w % 2 == 0
    assert abs(len(frames) / 25 - audio_seconds(short_speech)) <= 1 / 25 + 1e-6
    # The mouth moves: the lower face varies across frames, the top of the image barely does.
    stack = np.stack(frames).astype(np.float32)
    assert stack.std(axis=0).max() > 20


def test_same_seed_gives_identical_frames_and_another_seed_differs(image_job, astronaut_png, short_speech, tmp_path):
    _, first = image_job
    again = run_job(ImageRequest(image=str(astronaut_png), audio=str(short_speech), seed=7), out_path=tmp_path / "a.mp4")
    other = run_job(ImageRequest(image=str(astronaut_png), audio=str(short_speech), seed=8), out_path=tmp_path / "b.mp4")
    a, b, c = decode(first)[0], decode(tmp_path / "a.mp4")[0], decode(tmp_path / "b.mp4")[0]
    assert again.status == other.status == "completed"
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))


def test_unknown_prompt_words_are_reported_not_dropped(astronaut_png, short_speech, tmp_path):
    record = run_job(ImageRequest(image=str(astronaut_png), audio=str(short_speech), prompt="calm glitter"),
                     out_path=tmp_path / "o.mp4")
    assert record.status == "completed"
    assert record.ignoredPromptWords == ["glitter"]
    assert any("glitter" in w for w in record.warnings)


def test_mask_confines_the_edit(astronaut, short_speech, tmp_path):
    import cv2

    mask = np.zeros(astronaut.shape[:2], np.uint8)
    mask[:, :256] = 255  # only the left half may change; the face is in the middle-left
    mask_path = save_rgb(tmp_path / "mask.png", np.repeat(mask[..., None], 3, axis=2))
    img_path = save_rgb(tmp_path / "astro.png", astronaut)
    record = run_job(ImageRequest(image=str(img_path), audio=str(short_speech), mask_image=str(mask_path), seed=1),
                     out_path=tmp_path / "o.mp4")
    assert record.status == "completed", record.error
    frames, _ = decode(tmp_path / "o.mp4")
    source = cv2.resize(astronaut, (480, 480), interpolation=cv2.INTER_AREA)
    changed_left = max(np.abs(f[:, :200].astype(int) - source[:, :200]).max() for f in frames)
    right = min(psnr(f[:, 260:], source[:, 260:]) for f in frames)
    assert changed_left > 40  # the mouth (left half) moved
    assert right >= 38  # the right half is the source up to encoding noise


def test_video_dub_truncates_long_video_and_keeps_the_upper_face(astronaut_video, tmp_path, media_dir):
    speech = make_speech(media_dir / "dub.wav", "Bob made a map.")  # ~1.3 s, shorter than the 2 s video
    record = run_job(VideoRequest(video=str(astronaut_video), audio=str(speech)), out_path=tmp_path / "dub.mp4")
    assert record.status == "completed", record.error
    out, _ = decode(tmp_path / "dub.mp4")
    src, _ = decode(astronaut_video)
    assert abs(len(out) / 25 - audio_seconds(speech)) <= 1 / 25 + 1e-6
    # Region above the nose is the input's (resized the same way the pipeline does).
    import cv2

    with FaceAnalyzer() as analyzer:
        face = analyzer.detect(out[0])[0]
    nose_y = int(face.landmarks[1, 1]) - 4
    scores = [psnr(o[:nose_y], cv2.resize(s, (480, 480), interpolation=cv2.INTER_AREA)[:nose_y]) for o, s in zip(out, src)]
    assert min(scores) >= 40


def test_video_dub_extends_short_video_by_ping_pong(astronaut_video, tmp_path, media_dir):
    speech = make_speech(media_dir / "long.wav", "Mom and Bob bought maps, paper and pens for the museum.")
    record = run_job(VideoRequest(video=str(astronaut_video), audio=str(speech)), out_path=tmp_path / "ext.mp4")
    assert record.status == "completed", record.error
    out, _ = decode(tmp_path / "ext.mp4")
    assert len(out) > 50 and abs(len(out) / 25 - audio_seconds(speech)) <= 1 / 25 + 1e-6
    # Forward, then backward from the last frame: at the turn the picture continues smoothly, where a
    # plain loop would jump from the last frame back to the first.
    src = decode(astronaut_video)[0]
    n = len(src)

    def diff(a, b):
        return float(np.abs(a[:150].astype(int) - b[:150]).mean())  # hair and forehead: never edited

    loop_jump = diff(src[-1], src[0]) * 480 / 600
    assert diff(out[n - 1], out[n]) < 0.3 * loop_jump
    assert diff(out[n + 5], out[n - 7]) < 0.3 * loop_jump  # frame n+5 shows source frame n-7


def test_video_frames_without_a_face_pass_through(astronaut_png, tmp_path, media_dir):
    video = tmp_path / "gap.mp4"
    # 1 s of face, 1 s of grey, 1 s of face.
    run_ffmpeg("-loop", "1", "-t", "1", "-i", str(astronaut_png), "-f", "lavfi", "-t", "1", "-i", "color=c=gray:s=512x512:r=25",
               "-loop", "1", "-t", "1", "-i", str(astronaut_png),
               "-filter_complex", "[0:v]fps=25,format=yuv420p[a];[1:v]format=yuv420p[b];[2:v]fps=25,format=yuv420p[c];[a][b][c]concat=n=3:v=1[v]",
               "-map", "[v]", "-c:v", "libx264", str(video))
    speech = make_speech(media_dir / "three.wav", "Bob may pay for maps and more maps, Pam.")
    record = run_job(VideoRequest(video=str(video), audio=str(speech)), out_path=tmp_path / "o.mp4")
    assert record.status == "completed", record.error
    assert any("no face" in w for w in record.warnings)
    out, _ = decode(tmp_path / "o.mp4")
    grey = out[37]  # middle of the face-less second
    assert grey.std() < 3


def test_dialogue_each_mouth_follows_its_own_track(two_people_png, tmp_path, media_dir):
    left = make_speech(media_dir / "left.wav", "Maybe we should map the moon.")
    right = make_speech(media_dir / "right.wav", "Bob paid for popcorn.", voice="en-us+f3")
    record = run_job(MultiRequest(image=str(two_people_png), left_audio=str(left), right_audio=str(right),
                                  order="left_right", seed=2), out_path=tmp_path / "d.mp4")
    assert record.status == "completed", record.error
    frames, _ = decode(tmp_path / "d.mp4")
    n_left = int(audio_seconds(left) * 25)
    assert abs(len(frames) / 25 - audio_seconds(left) - audio_seconds(right)) <= 2 / 25
    with FaceAnalyzer() as analyzer:
        openings = []
        for frame in frames[::2]:
            faces = analyzer.detect(frame)
            assert len(faces) == 2
            openings.append([mouth_opening(f.landmarks) for f in faces])
    openings = np.array(openings)
    first, second = openings[: n_left // 2 - 2], openings[n_left // 2 + 3:]
    # While the left speaks, the right (listener) mouth stays still, and the other way round.
    assert first[:, 0].std() > 3 * first[:, 1].std()
    assert second[:, 1].std() > 3 * second[:, 0].std()


def _failed(record, field: str, out: Path, words: str = ""):
    assert record.status == "failed"
    assert record.error.startswith(f"{field}: "), record.error
    assert words in record.error
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")], "half-written files left behind"


@pytest.fixture(scope="module")
def bad_media(tmp_path_factory, astronaut_png):
    d = tmp_path_factory.mktemp("bad")
    (d / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    (d / "empty.wav").write_bytes(b"")
    sf.write(str(d / "silence.wav"), np.zeros(22050 * 2, np.float32), 22050)
    sf.write(str(d / "zero.wav"), np.zeros(0, np.float32), 22050)
    from skimage import data

    save_rgb(d / "coffee.png", data.coffee())
    run_ffmpeg("-f", "lavfi", "-i", "testsrc=duration=1:size=320x240:rate=25", "-pix_fmt", "yuv420p", str(d / "noface.mp4"))
    return d


@pytest.mark.parametrize("make,field,words", [
    (lambda d, a, s: ImageRequest(image=str(d / "corrupt.mp4"), audio=s), "image", "cannot read"),
    (lambda d, a, s: ImageRequest(image=a, audio=str(d / "empty.wav")), "audio", "empty"),
    (lambda d, a, s: ImageRequest(image=s, audio=s), "image", "expected an image"),
    (lambda d, a, s: ImageRequest(image=a, audio=a), "audio", "expected an audio"),
    (lambda d, a, s: ImageRequest(image=a, audio=str(d / "silence.wav")), "audio", "no speech"),
    (lambda d, a, s: ImageRequest(image=a, audio=str(d / "zero.wav")), "audio", ""),
    (lambda d, a, s: ImageRequest(image=str(d / "coffee.png"), audio=s), "image", "no face"),
    (lambda d, a, s: MultiRequest(image=a, left_audio=s, right_audio=s), "image", "found 1 face, dialogue needs 2"),
    (lambda d, a, s: VideoRequest(video=str(d / "noface.mp4"), audio=s), "video", "no face"),
    (lambda d, a, s: ImageRequest(image=str(d / "missing.png"), audio=s), "image", "not found"),
    (lambda d, a, s: ImageRequest(image=a, audio="http://127.0.0.1:9/speech.wav"), "audio", "download"),
])
def test_bad_input_fails_cleanly_naming_the_field(make, field, words, bad_media, astronaut_png, short_speech, tmp_path):
    out_dir = tmp_path / "outputs"
    out_dir.mkdir()
    out = out_dir / "o.mp4"
    record = run_job(make(bad_media, str(astronaut_png), str(short_speech)), out_path=out)
    _failed(record, field, out, words)


def test_dialogue_with_silent_right_track_names_right_audio(two_people_png, bad_media, short_speech, tmp_path):
    record = run_job(MultiRequest(image=str(two_people_png), left_audio=str(short_speech),
                                  right_audio=str(bad_media / "silence.wav")), out_path=tmp_path / "o.mp4")
    _failed(record, "right_audio", tmp_path / "o.mp4", "no speech")


REPO = Path(__file__).resolve().parents[1]
TRANSCRIPT = (REPO / "assets" / "speech_en.txt").read_text().strip()


@pytest.mark.parametrize("kind", ["image", "video"])
def test_outputs_meet_the_sync_targets(kind, tmp_path):
    """Measured on the output video by a landmark detector: r ≥ 0.6 at |lag| ≤ 1, mouth closed in
    silences, lips closed on /p b m/, and for a dub the face above the nose untouched (≥ 40 dB)."""
    from lipsync.quality import sync_report

    audio = REPO / "assets" / "speech_en.wav"
    source = REPO / "assets" / ("portrait.png" if kind == "image" else "talking.mp4")
    request = (ImageRequest(image=str(source), audio=str(audio), transcript=TRANSCRIPT, seed=5) if kind == "image"
               else VideoRequest(video=str(source), audio=str(audio), transcript=TRANSCRIPT))
    record = run_job(request, out_path=tmp_path / "o.mp4")
    assert record.status == "completed", record.error
    report = sync_report(tmp_path / "o.mp4", audio, transcript=TRANSCRIPT,
                         reference=source if kind == "video" else None, plot=tmp_path / "sync.png")
    assert report.r >= 0.6 and abs(report.best_lag) <= 1, report.to_dict()
    assert report.silence_closed is not None and report.silence_closed >= 0.9, report.to_dict()
    assert report.bilabial_closed is not None and report.bilabial_closed >= 0.8, report.to_dict()
    if kind == "video":
        assert report.upper_face_psnr >= 40, report.to_dict()
    assert (tmp_path / "sync.png").stat().st_size > 10_000


def _decoded_audio(path: Path) -> tuple[np.ndarray, int]:
    with av.open(str(path)) as c:
        rate = c.streams.audio[0].rate
        return np.concatenate([f.to_ndarray().mean(axis=0) for f in c.decode(audio=0)]), rate


def test_output_audio_is_loudness_normalised_and_laid_out_in_order(two_people_png, tmp_path, media_dir):
    from lipsync.media.audio import integrated_loudness, load_audio

    left = make_speech(media_dir / "order_left.wav", "One two three four.")
    right = make_speech(media_dir / "order_right.wav", "Maybe.", voice="en-us+f3")
    record = run_job(MultiRequest(image=str(two_people_png), left_audio=str(left), right_audio=str(right),
                                  order="right_left"), out_path=tmp_path / "o.mp4")
    assert record.status == "completed", record.error
    audio, rate = _decoded_audio(tmp_path / "o.mp4")
    assert abs(integrated_loudness(audio, rate) - (-16.0)) < 1.0
    assert np.abs(audio).max() <= 0.97
    # right_left: the short right clip first, then the left one, each as loud as the other.
    n_right = len(load_audio(right, "right_audio", rate))
    first, rest = audio[:n_right], audio[n_right:]
    assert abs(len(audio) / rate - audio_seconds(left) - audio_seconds(right)) < 0.06
    src_left = load_audio(left, "left_audio", rate)
    lag = np.argmax(np.correlate(np.abs(rest[: len(src_left)]) ** 2, np.abs(src_left[: len(rest)]) ** 2, "full")[
        len(src_left) - 1 - 200: len(src_left) + 200]) - 200
    assert abs(lag) < rate // 100  # the left clip starts right after the right one (within 10 ms)
    assert np.sqrt(np.mean(first**2)) > 0.02


def test_dialogue_speakers_can_be_chosen_by_index_or_box(two_people_png, tmp_path, media_dir):
    """Swapping the faces (by index, or by a box around each) makes the other face speak first."""
    left = make_speech(media_dir / "swap_left.wav", "Maybe we should map the moon.")
    right = make_speech(media_dir / "swap_right.wav", "Bob paid.", voice="en-us+f3")
    n_left = int(audio_seconds(left) * 25)
    # two_people.png: the astronaut fills x 0-512, Grace Hopper the rest.
    for name, choice in (("index", dict(left_face=1, right_face=0)),
                         ("box", dict(left_face=(600, 0, 900, 300), right_face=(150, 40, 350, 300)))):
        record = run_job(MultiRequest(image=str(two_people_png), left_audio=str(left), right_audio=str(right),
                                      order="left_right", seed=2, **choice), out_path=tmp_path / f"{name}.mp4")
        assert record.status == "completed", record.error
        frames, _ = decode(tmp_path / f"{name}.mp4")
        with FaceAnalyzer() as analyzer:
            openings = np.array([[mouth_opening(f.landmarks) for f in analyzer.detect(frame)]
                                 for frame in frames[: n_left - 3: 2]])
        # The "left" speaker is now the face on the image's right.
        assert openings[:, 1].std() > 3 * openings[:, 0].std(), name
