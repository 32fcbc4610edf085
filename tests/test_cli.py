"""The `lipsync` command as scripts use it: exact option names, JSON on stdout, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_speech

REPO = Path(__file__).resolve().parents[1]


def lipsync(*args: str, env_home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "LIPSYNC_HOME": str(env_home), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "lipsync.cli", *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=300)


@pytest.fixture(scope="module")
def words(media_dir) -> Path:
    return make_speech(media_dir / "cli.wav", "Bob made a map.")


def test_image_json_record(tmp_path, lipsync_home, words, astronaut_png):
    out = tmp_path / "o.mp4"
    res = lipsync("image", "--image", str(astronaut_png), "--audio", str(words), "--out", str(out), "--seed", "3",
                  "--prompt", "calm", "--transcript", "Bob made a map.", "--json", env_home=lipsync_home)
    assert res.returncode == 0, res.stderr
    record = json.loads(res.stdout)
    assert record["status"] == "completed" and record["output"] == str(out) and out.is_file()
    assert record["model"] == "lipsync-image" and record["request"]["seed"] == 3
    assert "Traceback" not in res.stderr


def test_dialogue_command_and_order(tmp_path, lipsync_home, words, two_people_png):
    out = tmp_path / "d.mp4"
    res = lipsync("dialogue", "--image", str(two_people_png), "--left-audio", str(words), "--right-audio", str(words),
                  "--order", "right_left", "--resolution", "480p", "--out", str(out), env_home=lipsync_home)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(out) and out.is_file()


@pytest.mark.parametrize("args,message", [
    (["image", "--image", "{missing}", "--audio", "{audio}"], "error: image: file not found"),
    (["dialogue", "--image", "{image}", "--left-audio", "{audio}", "--right-audio", "{audio}", "--order", "sideways"],
     "error: order: "),
    (["image", "--image", "{image}", "--audio", "{audio}", "--resolution", "4k"], "error: resolution: "),
    (["dialogue", "--image", "{image}", "--left-audio", "{audio}", "--right-audio", "{audio}"],
     "error: image: found 1 face, dialogue needs 2"),
])
def test_bad_input_is_one_line_nonzero_and_no_output(args, message, tmp_path, lipsync_home, words, astronaut_png):
    out = tmp_path / "o.mp4"
    args = [a.format(missing=tmp_path / "nope.png", audio=words, image=astronaut_png) for a in args]
    res = lipsync(*args, "--out", str(out), env_home=lipsync_home)
    assert res.returncode != 0
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(message), res.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_cost_json(lipsync_home, words, media_dir):
    long_words = make_speech(media_dir / "long_cli.wav", "This sentence is meant to run for well over five seconds, "
                                                           "so that the minimum does not apply to it at all.")
    res = lipsync("cost", "dialogue", "--left-audio", str(words), "--right-audio", str(long_words),
                  "--order", "left_right", "--resolution", "720p", "--json", env_home=lipsync_home)
    assert res.returncode == 0, res.stderr
    est = json.loads(res.stdout)
    assert {"credits", "billed_seconds", "rate", "rule"} <= set(est)
    assert est["rate"] == 4 and est["credits"] == 4 * est["billed_seconds"] and est["billed_seconds"] > 5
    plain = lipsync("cost", "image", "--audio", str(words), env_home=lipsync_home)
    assert plain.returncode == 0 and plain.stdout.startswith("10 credits")


def test_engines_lists_builtin(lipsync_home):
    res = lipsync("engines", env_home=lipsync_home)
    assert res.returncode == 0 and res.stdout.startswith("builtin:")


def test_local_render_path_skips_network_imports():
    """Every CLI run pays its imports: the parser (remote commands included) and the render stack must not
    load httpx, which only URL inputs and the hosted API need."""
    code = (
        "import sys\n"
        "from lipsync.cli import build_parser\n"
        "build_parser()\n"
        "import lipsync.pipeline, lipsync.jobs.runner\n"
        "from pathlib import Path\n"
        "from lipsync.media.fetch import resolve\n"
        "assert resolve('README.md', 'audio', Path('.')) == Path('README.md')\n"
        "print('httpx' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "False"
