"""The media layer on real files made on the fly: espeak-ng speech, photos, ffmpeg-encoded clips."""

from __future__ import annotations

import http.server
import re
import subprocess
import threading
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from conftest import ffmpeg_exe, make_speech, run_ffmpeg, save_rgb
from lipsync.errors import InputError
from lipsync.media import (
    VideoSource,
    VideoWriter,
    arrange_dialogue,
    expect_kind,
    integrated_loudness,
    load_audio,
    loudness_normalize,
    output_size,
    probe,
    read_image,
    resolve,
    write_wav,
)
from lipsync.media.video import ping_pong_index

SR = 16000


# -- media made once per module -------------------------------------------------------------------


@pytest.fixture(scope="module")
def mdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media_layer")


@pytest.fixture(scope="module")
def speech(mdir) -> Path:
    return make_speech(mdir / "speech.wav", "Bob bought a map. Mom made pasta.")


@pytest.fixture(scope="module")
def speech_duration(speech) -> float:
    return sf.info(str(speech)).duration


@pytest.fixture(scope="module")
def small_png(mdir, astronaut) -> Path:
    import cv2

    return save_rgb(mdir / "small.png", cv2.resize(astronaut, (96, 64), interpolation=cv2.INTER_AREA))


def index_video(path: Path, seconds: float, *extra: str) -> Path:
    """A lossless 64x48 clip at 25 fps whose frame n has luma 16 + 4n, so the frame index can be read back."""
    run_ffmpeg(
        "-f", "lavfi", "-i", f"color=c=black:s=64x48:r=25:d={seconds},format=yuv420p,geq=lum='16+4*N':cb=128:cr=128",
        *extra, "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv420p", str(path),
    )  # fmt: skip
    return path


def frame_index(rgb: np.ndarray) -> int:
    return int(round(float(rgb.mean()) * 219 / 255 / 4))


# -- probe ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", ["wav", "mp3", "m4a", "flac", "ogg"])
def test_probe_audio_formats(mdir, speech, speech_duration, ext):
    path = speech if ext == "wav" else mdir / f"speech.{ext}"
    if ext != "wav":
        run_ffmpeg("-i", str(speech), str(path))
    info = probe(path, "audio")
    assert info.kind == "audio" and info.has_audio
    assert info.sample_rate == 22050 and info.channels == 1
    assert info.duration == pytest.approx(speech_duration, abs=0.1)
    assert info.width is None and info.fps is None
    expect_kind(info, "audio", ("audio", "video"))


@pytest.mark.parametrize(
    "ext,codecs",
    [
        ("mp4", ["-c:v", "libx264", "-c:a", "aac"]),
        ("mov", ["-c:v", "libx264", "-c:a", "aac"]),
        ("webm", ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-c:a", "libopus"]),
        ("mkv", ["-c:v", "libx264", "-c:a", "flac"]),
    ],
)
def test_probe_video_formats(mdir, small_png, speech, ext, codecs):
    path = mdir / f"clip.{ext}"
    run_ffmpeg("-loop", "1", "-framerate", "25", "-i", str(small_png), "-i", str(speech), "-t", "1",
               "-pix_fmt", "yuv420p", *codecs, str(path))  # fmt: skip
    info = probe(path, "video")
    assert info.kind == "video"
    assert (info.width, info.height, info.rotation) == (96, 64, 0)
    assert info.fps == pytest.approx(25)
    assert info.duration == pytest.approx(1.0, abs=0.1)
    assert info.has_audio and info.sample_rate in (22050, 48000)
    expect_kind(info, "audio", ("audio", "video"))  # a video with sound is fine for an audio field
    with pytest.raises(InputError, match="expected an image, got a video"):
        expect_kind(info, "image", ("image",))


@pytest.mark.parametrize("ext", ["png", "jpg", "webp", "bmp"])
def test_probe_images(mdir, small_png, ext):
    path = small_png if ext == "png" else mdir / f"small.{ext}"
    if ext != "png":
        run_ffmpeg("-i", str(small_png), str(path))
    info = probe(path, "image")
    assert (info.kind, info.width, info.height, info.duration, info.has_audio) == ("image", 96, 64, None, False)
    with pytest.raises(InputError) as err:
        expect_kind(info, "audio", ("audio", "video"))
    assert str(err.value) == "audio: expected an audio file (or a video with sound), got an image"


def test_probe_cover_art_is_still_audio(mdir, speech, small_png):
    path = mdir / "cover.mp3"
    run_ffmpeg("-i", str(speech), "-i", str(small_png), "-map", "0:a", "-map", "1:v", "-c:a", "libmp3lame",
               "-c:v", "mjpeg", "-disposition:v", "attached_pic", str(path))  # fmt: skip
    info = probe(path, "audio")
    assert info.kind == "audio" and info.duration > 1.0


def test_probe_bad_files(mdir):
    junk = mdir / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).bytes(20000))
    with pytest.raises(InputError) as err:
        probe(junk, "video")
    assert str(err.value) == "video: cannot read this file as audio, video or image"
    text = mdir / "notes.wav"
    text.write_text("not audio at all\n" * 50)
    with pytest.raises(InputError, match="cannot read this file"):
        probe(text, "audio")
    empty = mdir / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="^audio: file is empty$"):
        probe(empty, "audio")
    with pytest.raises(InputError, match="file not found"):
        probe(mdir / "nope.mp4", "video")


def test_video_without_audio_track(mdir, small_png):
    path = mdir / "silent.mp4"
    run_ffmpeg("-loop", "1", "-i", str(small_png), "-t", "0.5", "-pix_fmt", "yuv420p", str(path))
    info = probe(path, "audio")
    assert info.kind == "video" and not info.has_audio and info.sample_rate is None
    with pytest.raises(InputError, match="^audio: video has no audio track$"):
        expect_kind(info, "audio", ("audio", "video"))
    with pytest.raises(InputError, match="has no audio track"):
        load_audio(path, "audio", SR)


# -- rotation, VFR, ping-pong ---------------------------------------------------------------------


def test_rotated_phone_video_comes_out_upright(mdir, small_png):
    plain = mdir / "landscape.mp4"
    run_ffmpeg("-loop", "1", "-i", str(small_png), "-t", "0.4", "-r", "25", "-c:v", "libx264", "-crf", "10",
               "-pix_fmt", "yuv420p", str(plain))  # fmt: skip
    rotated = mdir / "portrait.mp4"
    run_ffmpeg("-display_rotation", "90", "-i", str(plain), "-c", "copy", str(rotated))
    upright = mdir / "upright.png"  # ffmpeg's own autorotation is the reference
    run_ffmpeg("-i", str(rotated), "-frames:v", "1", str(upright))

    info = probe(rotated, "video")
    assert (info.rotation, info.width, info.height) == (90, 64, 96)
    reference = read_image(upright, "x").astype(int)
    assert reference.shape == (96, 64, 3)
    with VideoSource(rotated, "video", (64, 96)) as src:
        frames = list(src.frames(3))
    assert all(f.shape == (96, 64, 3) and f.dtype == np.uint8 for f in frames)
    assert np.abs(frames[0].astype(int) - reference).mean() < 4
    assert np.abs(np.rot90(frames[0], 2).astype(int) - reference).mean() > 20  # not upside down


def test_vfr_video_is_resampled_by_timestamps(mdir):
    # 2 s at 25 fps with frames 10..19 dropped: 40 frames, timestamps kept.
    path = index_video(mdir / "vfr.mp4", 2, "-vf", r"select='not(between(n\,10\,19))'", "-fps_mode", "vfr")
    with av.open(str(path)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 40
    with VideoSource(path, "video", (64, 48)) as src:
        assert src.num_frames == 50 and src.duration == pytest.approx(2.0, abs=0.05)
        got = [frame_index(f) for f in src.frames(50)]
    assert got == list(range(10)) + [9] * 10 + list(range(20, 50))


def test_truncation_and_ping_pong(mdir):
    path = index_video(mdir / "ten.mp4", 0.4)
    with VideoSource(path, "video", (64, 48)) as src:
        assert src.num_frames == 10
        assert [frame_index(f) for f in src.frames(4)] == [0, 1, 2, 3]
        assert src._cache_dir is None  # no disk cache unless the video must be extended
        frames = src.frames(30)
        got = [frame_index(next(frames)) for _ in range(12)]
        cache = Path(src._cache_dir) / "frames.rgb"
        assert cache.stat().st_size == 10 * 64 * 48 * 3  # the resized forward pass, on disk
        got += [frame_index(f) for f in frames]
    assert got == list(range(10)) + [8, 7, 6, 5, 4, 3, 2, 1, 0] + [1, 2, 3, 4, 5, 6, 7, 8, 9] + [8, 7]
    assert not cache.exists()  # close() removed it
    assert [ping_pong_index(k, 3) for k in range(7)] == [0, 1, 2, 1, 0, 1, 2]


def test_frames_are_independent_arrays(mdir):
    # 5 fps source read at 25 fps: each source frame is shown 5 times; drawing on one must not leak.
    path = mdir / "slow.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc2=s=64x48:r=5:d=1", "-pix_fmt", "yuv420p", str(path))
    with VideoSource(path, "video", (64, 48)) as src:
        frames = []
        for f in src.frames(10):
            f[:] = 0
            frames.append(f)
    assert len({id(f) for f in frames}) == 10


def test_video_source_errors(mdir, speech, small_png):
    with pytest.raises(InputError, match="^video: has no video track$"):
        VideoSource(speech, "video", (64, 48))
    with pytest.raises(InputError, match="file not found"):
        VideoSource(mdir / "missing.mp4", "video", (64, 48))


def test_output_size():
    assert output_size(1920, 1080, "480p") == (854, 480)
    assert output_size(1280, 720, "720p") == (1280, 720)
    assert output_size(1080, 1920, "720p") == (720, 1280)
    assert output_size(512, 512, "480p") == (480, 480)
    assert output_size(333, 250, "720p") == (960, 720)
    w, h = output_size(1001, 777, "480p")
    assert h == 480 and w % 2 == 0 and abs(w / h - 1001 / 777) < 0.01
    with pytest.raises(InputError, match="resolution"):
        output_size(640, 480, "1080p")


def test_read_image_orientation_alpha_gray(mdir, astronaut):
    from PIL import Image

    img = Image.fromarray(astronaut[:200, :300])
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    img.save(mdir / "sideways.jpg", exif=exif, quality=95)
    out = read_image(mdir / "sideways.jpg", "image")
    assert out.shape == (300, 200, 3)
    side = probe(mdir / "sideways.jpg", "image")
    assert (side.width, side.height) == (200, 300)
    assert np.abs(out.astype(int) - np.rot90(astronaut[:200, :300], -1)).mean() < 6

    rgba = np.dstack([astronaut[:50, :60], np.full((50, 60), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(mdir / "alpha.png")
    assert np.array_equal(read_image(mdir / "alpha.png", "image"), astronaut[:50, :60])

    Image.fromarray(astronaut[:50, :60, 1]).save(mdir / "gray.png")
    gray = read_image(mdir / "gray.png", "image")
    assert gray.shape == (50, 60, 3) and np.array_equal(gray[..., 0], astronaut[:50, :60, 1])

    (mdir / "fake.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(InputError, match="^image: cannot read this file as an image$"):
        read_image(mdir / "fake.png", "image")


# -- audio ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,args,channels",
    [
        ("m8.wav", ["-ar", "8000", "-ac", "1"], 1),
        ("st48.wav", ["-ar", "48000", "-ac", "2"], 2),
        ("s51.flac", ["-ar", "44100", "-af", "pan=5.1|FL=c0|FR=c0|FC=c0|LFE=0*c0|BL=c0|BR=c0"], 6),
        ("st.m4a", ["-ar", "44100", "-ac", "2", "-c:a", "aac"], 2),
    ],
)
def test_load_audio_any_rate_and_layout(mdir, speech, speech_duration, name, args, channels):
    path = mdir / name
    run_ffmpeg("-i", str(speech), *args, str(path))
    assert probe(path, "audio").channels == channels
    x = load_audio(path, "audio", SR)
    assert x.dtype == np.float32 and x.ndim == 1
    assert len(x) == pytest.approx(speech_duration * SR, abs=0.03 * SR)
    assert 0.05 < np.abs(x).max() <= 1.0
    # Same speech as the original, just resampled: the envelopes line up.
    ref = load_audio(speech, "audio", SR)
    n = min(len(ref), len(x))
    env = [np.convolve(np.abs(v[:n]), np.ones(400) / 400, "valid") for v in (ref, x)]
    assert np.corrcoef(*env)[0, 1] > 0.9


def test_load_audio_from_video_and_empty(mdir, astronaut_video):
    x = load_audio(astronaut_video, "audio", SR)
    assert len(x) == pytest.approx(2 * SR, abs=0.05 * SR)
    empty = mdir / "zero.wav"
    sf.write(str(empty), np.zeros(0, np.float32), 16000)
    with pytest.raises(InputError, match="^audio: audio is empty \\(zero length\\)$"):
        load_audio(empty, "audio", SR)


def test_load_audio_whatever_the_header_says(mdir, speech, monkeypatch):
    """The array is sized from the header's duration; a wrong one only costs a resize."""
    import lipsync.media.audio as audio_module

    ref = load_audio(speech, "audio", SR)
    for seconds in (0.0, 0.05, 10_000.0, -5.0):
        monkeypatch.setattr(audio_module, "_expected_seconds", lambda container, stream, s=seconds: s)
        x = load_audio(speech, "audio", SR)
        assert x.dtype == np.float32 and x.flags.owndata and np.array_equal(x, ref), seconds


def test_load_audio_and_loudness_hold_no_second_copy(mdir):
    """Decoding a minute holds the result and a frame; the loudness holds neither a copy nor its square."""
    import tracemalloc

    path = mdir / "minute.flac"
    run_ffmpeg("-f", "lavfi", "-i", "anoisesrc=d=60:c=pink:r=44100:a=0.2", "-ac", "2", str(path))
    tracemalloc.start()
    try:
        x = load_audio(path, "audio", SR)
        decode_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        integrated_loudness(x, SR)
        loudness_peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert x.size == pytest.approx(60 * SR, abs=SR // 10)
    assert decode_peak < 1.2 * x.nbytes  # was ~3x: a list of frames, their concatenation, np.abs(x)
    assert loudness_peak < x.nbytes  # was ~10x: float64 copy, filtered copy, its square, cumsum


def ffmpeg_lufs(path: Path) -> float:
    res = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostats", "-i", str(path), "-af", "ebur128", "-f", "null", "-"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return float(re.findall(r"I:\s+(-?[\d.]+) LUFS", res.stderr)[-1])


def test_integrated_loudness_reference():
    sr = 48000
    sine = np.sin(2 * np.pi * 1000 * np.arange(sr * 3) / sr)
    assert integrated_loudness(sine, sr) == pytest.approx(-3.01, abs=0.05)  # BS.1770's calibration point


@pytest.mark.parametrize("target", [-16.0, -23.0, -14.0])
def test_loudness_normalize_hits_target(mdir, speech, target):
    x = load_audio(speech, "audio", SR) * 0.05
    y = loudness_normalize(x, SR, target_lufs=target)
    assert y.dtype == np.float32 and np.abs(y).max() <= 0.95 + 1e-6
    out = mdir / f"norm{int(-target)}.wav"
    write_wav(out, y, SR)
    assert ffmpeg_lufs(out) == pytest.approx(target, abs=1.0)  # measured by ffmpeg, not by us


def test_loudness_normalize_limits_an_unreachable_target(speech):
    x = load_audio(speech, "audio", SR)
    loud = loudness_normalize(x, SR, target_lufs=-6.0, peak=0.9)
    assert np.abs(loud).max() <= 0.9 + 1e-6
    assert integrated_loudness(loud, SR) > integrated_loudness(loudness_normalize(x, SR), SR) + 3


def test_loudness_normalize_silence():
    y = loudness_normalize(np.zeros(SR, np.float32), SR)
    assert np.all(y == 0) and np.all(np.isfinite(y))
    assert len(loudness_normalize(np.zeros(10, np.float32), SR)) == 10


def test_arrange_dialogue_orders():
    left = np.full(100, 0.6, np.float32)
    right = np.full(60, 0.7, np.float32)

    mix, lt, rt = arrange_dialogue(left, right, "meanwhile")
    assert len(mix) == len(lt) == len(rt) == 100
    assert np.array_equal(lt, left) and np.all(rt[:60] == 0.7) and np.all(rt[60:] == 0)
    assert np.abs(mix).max() <= 1.0  # 0.6 + 0.7 would clip: scaled down
    assert mix[0] / mix[80] == pytest.approx(1.3 / 0.6, rel=1e-4)

    mix, lt, rt = arrange_dialogue(left, right, "left_right")
    assert len(mix) == 160
    assert np.all(lt[:100] == 0.6) and np.all(lt[100:] == 0)
    assert np.all(rt[:100] == 0) and np.all(rt[100:] == 0.7)
    assert np.array_equal(mix, lt + rt)

    mix, lt, rt = arrange_dialogue(left, right, "right_left")
    assert len(mix) == 160
    assert np.all(rt[:60] == 0.7) and np.all(rt[60:] == 0)
    assert np.all(lt[:60] == 0) and np.all(lt[60:] == 0.6)
    assert np.array_equal(mix, lt + rt)

    with pytest.raises(InputError, match="^order:"):
        arrange_dialogue(left, right, "both")


def test_write_wav(mdir):
    x = np.sin(np.arange(8000) / 10).astype(np.float32) * 1.5  # out of range: clipped, not wrapped
    write_wav(mdir / "w.wav", x, 8000)
    info = sf.info(str(mdir / "w.wav"))
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (8000, 1, "PCM_16", 8000)
    back, _ = sf.read(str(mdir / "w.wav"), dtype="float32")
    assert np.abs(back - np.clip(x, -1, 1)).max() < 1e-3


# -- writer ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [1.0, 1.23])
def test_writer_output(tmp_path, seconds):
    audio = (0.3 * np.sin(np.arange(int(seconds * SR)) * 0.05)).astype(np.float32)
    out = tmp_path / "result.mp4"
    with VideoWriter(out, (96, 64), audio, SR) as writer:
        n = writer.expected_frames
        assert n == round(seconds * 25)
        for i in range(n):
            writer.write(np.full((64, 96, 3), i * 8 % 256, np.uint8))
            assert not out.exists()  # only appears once finished
    assert out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["result.mp4"]  # no leftovers
    with av.open(str(out)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert v.codec_context.name == "h264" and v.codec_context.pix_fmt == "yuv420p"
        assert (v.codec_context.width, v.codec_context.height) == (96, 64)
        assert a.codec_context.name == "aac"
        assert c.duration / 1e6 == pytest.approx(seconds, abs=1 / 25)
        assert float(v.duration * v.time_base) == pytest.approx(seconds, abs=1 / 25)
        assert sum(1 for _ in c.decode(v)) == n


def test_writer_holds_last_frame_when_short(tmp_path):
    audio = np.zeros(SR * 2, np.float32)
    with VideoWriter(tmp_path / "short.mp4", (64, 48), audio, SR) as writer:
        for _ in range(10):
            writer.write(np.zeros((48, 64, 3), np.uint8))
    with av.open(str(tmp_path / "short.mp4")) as c:
        assert c.streams.video[0].frames == 50


def test_writer_exception_leaves_nothing(tmp_path):
    audio = np.zeros(SR, np.float32)
    with pytest.raises(KeyError):
        with VideoWriter(tmp_path / "x.mp4", (64, 48), audio, SR) as writer:
            writer.write(np.zeros((48, 64, 3), np.uint8))
            raise KeyError("boom")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError):
        with VideoWriter(tmp_path / "y.mp4", (64, 48), audio, SR) as writer:
            writer.write(np.zeros((64, 48, 3), np.uint8))  # wrong shape
    assert list(tmp_path.iterdir()) == []


def test_writer_ffmpeg_failure_raises_with_message(tmp_path):
    audio = np.zeros(SR, np.float32)
    with pytest.raises(RuntimeError, match="(?i)preset"):
        with VideoWriter(tmp_path / "z.mp4", (64, 48), audio, SR, preset="no-such-preset") as writer:
            for _ in range(25):
                writer.write(np.zeros((48, 64, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_video_roundtrip(tmp_path, astronaut_video, speech):
    """Read a video, write it back with new audio: the pipeline's own path through this layer."""
    info = probe(astronaut_video, "video")
    size = output_size(info.width, info.height, "480p")
    audio = load_audio(speech, "audio", SR)
    with VideoSource(astronaut_video, "video", size) as src, VideoWriter(tmp_path / "o.mp4", size, audio, SR) as w:
        for frame in src.frames(w.expected_frames):  # longer than the video: ping-pong
            w.write(frame)
    out = probe(tmp_path / "o.mp4", "video")
    assert (out.width, out.height) == (480, 480) and out.has_audio
    assert out.duration == pytest.approx(len(audio) / SR, abs=1 / 25)


# -- fetch ----------------------------------------------------------------------------------------

PAYLOAD = bytes(range(256)) * 40  # 10240 bytes


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/media/clip.wav":
            self._send(PAYLOAD, "audio/wav")
        elif self.path == "/download?id=7":
            self._send(PAYLOAD, "audio/mpeg")
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/media/clip.wav")
            self.end_headers()
        elif self.path == "/streamed.mp4":  # no Content-Length: the size limit must hold while streaming
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(PAYLOAD)
            self.close_connection = True
        else:
            self.send_error(404, "Not Found")

    def _send(self, body: bytes, ctype: str):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_fetch_downloads(server, tmp_path):
    got = resolve(f"{server}/media/clip.wav", "audio", tmp_path)
    assert got.parent == tmp_path and got.name == "clip.wav" and got.read_bytes() == PAYLOAD
    again = resolve(f"{server}/media/clip.wav", "audio", tmp_path)
    assert again != got and again.suffix == ".wav"  # never overwrites an earlier download
    guessed = resolve(f"{server}/download?id=7", "audio", tmp_path)
    assert guessed.suffix == ".mp3"  # no extension in the URL: from Content-Type
    assert resolve(f"{server}/redirect", "audio", tmp_path).read_bytes() == PAYLOAD
    assert not list(tmp_path.glob(".*"))  # no temp files left


def test_fetch_errors(server, tmp_path):
    with pytest.raises(InputError) as err:
        resolve(f"{server}/nothing.wav", "left_audio", tmp_path)
    assert err.value.field == "left_audio" and "could not download URL: HTTP 404" in str(err.value)
    with pytest.raises(InputError, match="download is larger than"):
        resolve(f"{server}/media/clip.wav", "audio", tmp_path, max_bytes=1000)
    with pytest.raises(InputError, match="download is larger than"):
        resolve(f"{server}/streamed.mp4", "video", tmp_path, max_bytes=4096)
    with pytest.raises(InputError, match="^video: URL points to a private address$"):
        resolve(f"{server}/media/clip.wav", "video", tmp_path, allow_private=False)
    with pytest.raises(InputError, match="could not download URL"):
        resolve("http://127.0.0.1:9/x.wav", "audio", tmp_path, timeout=5)  # nothing listens on port 9
    with pytest.raises(InputError, match="unsupported URL scheme 'ftp'"):
        resolve("ftp://example.com/a.wav", "audio", tmp_path)
    assert list(tmp_path.iterdir()) == []  # partial downloads removed


def test_fetch_local_paths(tmp_path, speech, monkeypatch):
    assert resolve(str(speech), "audio", tmp_path) == speech
    assert resolve(speech.as_uri(), "audio", tmp_path) == speech
    monkeypatch.setenv("HOME", str(speech.parent))
    assert resolve(f"~/{speech.name}", "audio", tmp_path) == speech
    with pytest.raises(InputError, match="^audio: file not found: .*nope.wav$"):
        resolve(str(tmp_path / "nope.wav"), "audio", tmp_path)
    with pytest.raises(InputError, match="is a folder"):
        resolve(str(tmp_path), "audio", tmp_path)
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(InputError, match="^audio: file is empty$"):
        resolve(str(tmp_path / "empty.wav"), "audio", tmp_path)
    with pytest.raises(InputError, match="is empty"):
        resolve("  ", "audio", tmp_path)
