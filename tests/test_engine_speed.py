"""Before a slow job starts (MuseTalk on a CPU), the CLI and the studio say how long it will take, from the
seconds per frame measured by earlier renders on this computer (the benchmark's figure until then)."""

from __future__ import annotations

import pytest

from lipsync import engines
from lipsync.engines import musetalk
from lipsync.engines.musetalk import speed
from lipsync.ui import events

from musetalk_hub import make_hub, tiny_state_dicts
from test_musetalk_engine import use_cache


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory):
    return make_hub(tmp_path_factory.mktemp("hub"), tiny_state_dicts())


@pytest.fixture
def tiny_hub(tiny_cache, monkeypatch):
    use_cache(monkeypatch, tiny_cache)
    return tiny_cache


@pytest.fixture(scope="module")
def short_line(media_dir):
    from conftest import make_speech

    return make_speech(media_dir / "speed_line.wav", "Paul met Bob.", speed=160)


def test_the_figure_is_the_benchmarks_until_a_render_measures_this_computer(lipsync_home):
    assert speed.frame_cost("cpu", "float32") == engines.base.FrameCost(speed.BENCH_CPU_SECONDS, "cpu", False)
    assert speed.frame_cost("cuda", "float16") is None  # a GPU not measured yet: nothing to warn about
    speed.record("cpu", "float32", 8.0)
    assert speed.frame_cost("cpu", "float32") == engines.base.FrameCost(8.0, "cpu", True)
    speed.record("cpu", "float32", 4.0)  # a running figure, not the last render alone
    assert speed.measured("cpu", "float32") == pytest.approx(6.0)
    assert (lipsync_home / "engines" / "musetalk-speed.json").is_file()  # kept in the data folder


def test_the_note_names_frames_and_time_and_only_when_slow(monkeypatch):
    builtin = engines.get_engine("builtin")
    assert engines.speed_note(builtin, lambda: pytest.fail("a fast engine probes nothing")) is None
    monkeypatch.setattr(musetalk, "frame_cost", lambda: engines.base.FrameCost(12.0, "cpu", True))
    note = engines.speed_note(musetalk, lambda: 10.0)
    assert note == ("musetalk runs on the CPU here, which is slow: 250 frames at 12.0 s a frame (measured on this "
                    "computer) take about 50 min. A GPU, or the builtin engine, is much faster")
    monkeypatch.setattr(musetalk, "frame_cost", lambda: engines.base.FrameCost(0.02, "cuda", True))
    assert engines.speed_note(musetalk, lambda: 10.0) is None


def test_cli_and_studio_say_it_before_the_job(tiny_hub, astronaut_png, short_line, tmp_path, capsys):
    from lipsync import cli

    speed.record("cpu", "float32", 30.0)  # as an earlier render on a slow CPU left it
    out = tmp_path / "avatar.mp4"
    code = cli.main(["image", "--image", str(astronaut_png), "--audio", str(short_line), "--engine", "musetalk",
                     "--no-download", "--quiet", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0 and out.is_file(), err
    first = err.splitlines()[0]
    assert first.startswith("note: musetalk runs on the CPU here, which is slow:")
    import soundfile

    frames = round(soundfile.info(str(short_line)).duration * 25)  # the line's length at 25 fps
    assert f"slow: {frames} frames at 30.0 s a frame (measured on this computer)" in first
    assert speed.measured("cpu", "float32") < 30.0 * speed.KEEP + 1  # the render measured the (fast) tiny models

    form = {"engine": "musetalk", "image": str(astronaut_png), "audio": str(short_line), "resolution": "480p"}
    assert f"{frames} frames" in events.speed_note("image", form)
    assert events.speed_note("image", {**form, "engine": "builtin"}) is None
    assert events.speed_note("image", {**form, "audio": None}) is None  # nothing to time yet
