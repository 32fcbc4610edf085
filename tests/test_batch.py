"""Batch jobs end to end on real media: CSV and JSONL rows, a bad row among good ones, re-runs that skip
what is done, files paired by name, the CLI, and the studio's Batch tab functions."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from lipsync import config
from lipsync.cli import build_parser
from lipsync.errors import InputError
from lipsync.jobs import batch, list_jobs
from lipsync.media.probe import probe
from lipsync.ui import events
from lipsync.ui.access import Viewer
from lipsync.ui.studio import Limits, Studio

from conftest import make_speech

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def jobs_folder(tmp_path_factory, astronaut_png, astronaut_video) -> Path:
    """A folder as a user keeps one: media in sub-folders, named relative to the jobs file."""
    folder = tmp_path_factory.mktemp("batch")
    (folder / "voice").mkdir()
    (folder / "clips").mkdir()
    make_speech(folder / "voice" / "hello.wav", "Bob made a map.")
    make_speech(folder / "voice" / "bye.wav", "Maybe, maybe not.", voice="en-us+f3")
    shutil.copy(astronaut_png, folder / "astronaut.png")
    shutil.copy(astronaut_video, folder / "clips" / "pan.mp4")
    return folder


def _csv(folder: Path, lines: list[str], name: str = "jobs.csv") -> Path:
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _seconds(path: Path) -> float:
    return probe(path, "output").duration


def test_csv_with_a_bad_row_renders_the_others_and_reruns_skip_them(jobs_folder, tmp_path):
    source = _csv(tmp_path, [
        "video,image,audio,seed,resolution",
        f"{jobs_folder}/clips/pan.mp4,,{jobs_folder}/voice/hello.wav,,",  # inferred: a dub
        f",{jobs_folder}/astronaut.png,{jobs_folder}/voice/missing.wav,3,",  # the bad row
        f",{jobs_folder}/astronaut.png,{jobs_folder}/voice/bye.wav,7,480p",
    ])
    out = tmp_path / "out"
    rows = batch.plan(batch.read_rows(source), out, batch.local_files(source.parent))
    assert [r.status for r in rows] == ["pending", "failed", "pending"]
    assert rows[1].error.startswith("row 2: audio: file not found")

    summary = batch.run_batch(rows, jobs=2)
    assert [r.status for r in summary.rows] == ["done", "failed", "done"]
    assert sorted(p.name for p in out.iterdir()) == ["1-pan.mp4", "3-astronaut.mp4"]  # no partial files left
    hello, bye = (_seconds(jobs_folder / "voice" / n) for n in ("hello.wav", "bye.wav"))
    assert abs(_seconds(out / "1-pan.mp4") - hello) < 0.1 and abs(_seconds(out / "3-astronaut.mp4") - bye) < 0.1
    # Each audio is under 5 s: the hosted minimum, 5 s at 2 credits/s, for each rendered row.
    assert [r.credits for r in summary.rows] == [10, None, 10] and summary.credits == 20
    assert summary.failed and summary.totals().startswith("3 rows: 2 done, 1 failed, 0 skipped")
    assert summary.table()[1][:2] == ["2", "failed"] and summary.table()[1][4].startswith("audio: file not found")
    assert summary.text().splitlines()[3].split()[:3] == ["2", "failed", "audio:"]
    # One job record per row, the refused one too (with its reason).
    by_status = sorted((r.status, r.model) for r in list_jobs())
    assert by_status == [("completed", "lipsync-image"), ("completed", "lipsync-video"), ("failed", "lipsync-image")]
    assert {r.request.get("seed") for r in list_jobs() if r.model == "lipsync-image" and r.status == "completed"} == {7}

    again = batch.run_batch(batch.plan(batch.read_rows(source), out, batch.local_files(source.parent)))
    assert [r.status for r in again.rows] == ["skipped", "failed", "skipped"]
    assert again.credits == 20 and again.count("done") == 0
    assert sum(1 for r in list_jobs() if r.status == "completed") == 2  # nothing rendered twice


def test_relative_paths_kinds_and_row_errors(jobs_folder):
    source = _csv(jobs_folder, [
        "Kind, Image, Audio, Left-Audio, Right-Audio, Seed, Output",
        "image,astronaut.png,voice/hello.wav,,,,",
        ",astronaut.png,,voice/hello.wav,voice/bye.wav,,duo",  # inferred: a dialogue
        "lipsync-image,astronaut.png,voice/hello.wav,,,seven,",
        "painting,astronaut.png,voice/hello.wav,,,,",
        "image,astronaut.png,voice/hello.wav,,,,../escape",
    ], name="relative.csv")
    rows = batch.plan(batch.read_rows(source), jobs_folder / "out", batch.local_files(jobs_folder))
    first, duo, seven, painting, escape = rows
    assert first.request.image == str(jobs_folder / "astronaut.png") and first.output.name == "1-astronaut.mp4"
    assert duo.request.model == "lipsync-image-multi" and duo.output.name == "duo.mp4"
    assert duo.request.left_audio == str(jobs_folder / "voice" / "hello.wav")
    assert seven.error == "row 3: seed: 'seven' is not allowed; expected a whole number"
    assert painting.error.startswith("row 4: kind: 'painting' is not a job kind")
    assert escape.error.startswith("row 5: output:")


def test_csv_cells_comments_and_line_breaks(tmp_path):
    source = tmp_path / "jobs.csv"
    source.write_text('# made by hand\nimage,audio,transcript\n\na.png,a.wav,"Bob made\na map."\n'
                      '# b.png,b.wav,\nc.png,c.wav,,extra\n')
    rows = batch.read_rows(source)
    assert [{k: v for k, v in r.items() if k != batch.TEXT_ROW} for r in rows] == [
        {"image": "a.png", "audio": "a.wav", "transcript": "Bob made\na map."},
        {"image": "c.png", "audio": "c.wav", "__error__": "has more cells than the header has columns"}]
    source.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(InputError, match="^jobs: "):
        batch.read_rows(source)


def test_jsonl_rows_keep_their_types(jobs_folder, tmp_path):
    source = tmp_path / "jobs.jsonl"
    source.write_text("\n".join([
        json.dumps({"model": "lipsync-image", "image": f"{jobs_folder}/astronaut.png",
                    "audio": f"{jobs_folder}/voice/hello.wav", "seed": 5, "prompt": "calm"}),
        "# a comment",
        json.dumps({"image": f"{jobs_folder}/astronaut.png", "audio": f"{jobs_folder}/voice/hello.wav", "seed": "5"}),
        json.dumps({"image": f"{jobs_folder}/astronaut.png", "audio": f"{jobs_folder}/voice/hello.wav",
                    "resolution": "1080p"}),
        "{not json",
    ]) + "\n")
    rows = batch.plan(batch.read_rows(source), tmp_path / "out", batch.local_files(tmp_path))
    assert [r.status for r in rows] == ["pending", "failed", "failed", "failed"]
    assert rows[1].error == "row 2: seed: '5' is not allowed; expected a whole number"  # JSON is strict
    assert rows[2].error.startswith("row 3: resolution: '1080p' is not allowed")
    assert rows[3].error.startswith("row 4: row: not valid JSON")
    summary = batch.run_batch(rows)
    done = summary.rows[0]
    assert done.status == "done" and done.output.is_file() and done.credits == 10
    assert summary.count("failed") == 3


def test_files_pair_by_stem():
    rows, problems = batch.pair_by_stem(
        ["/up/1/anna.mp4", "/up/2/Bob.PNG", "/up/3/carl.jpg", "/up/4/dana.png", "/up/5/dana.jpg"],
        ["/up/6/anna.wav", "/up/7/bob.mp3", "/up/8/eve.wav", "/up/9/dana.wav"])
    assert rows == [{"video": "/up/1/anna.mp4", "audio": "/up/6/anna.wav"},
                    {"image": "/up/2/Bob.PNG", "audio": "/up/7/bob.mp3"}]
    assert problems == ["carl.jpg: no audio named carl.*",
                        "dana: more than one file has this name (dana.png, dana.jpg, dana.wav)",
                        "eve.wav: no video or image named eve.*"]


def test_cli_batch_exit_code_summary_and_help(jobs_folder, tmp_path, lipsync_home, capsys):
    source = _csv(tmp_path, ["image,audio", f"{jobs_folder}/astronaut.png,{jobs_folder}/voice/hello.wav",
                             f"{jobs_folder}/astronaut.png,nowhere.wav"])
    env = {**os.environ, "LIPSYNC_HOME": str(lipsync_home), "HF_HUB_OFFLINE": "1"}
    res = subprocess.run([sys.executable, "-m", "lipsync.cli", "batch", str(source), "--out-dir", str(tmp_path / "o")],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert res.returncode == 1 and "Traceback" not in res.stderr + res.stdout
    assert "2 rows: 1 done, 1 failed, 0 skipped" in res.stdout and "file not found" in res.stdout
    assert (tmp_path / "o" / "1-astronaut.mp4").is_file()
    assert "row 1 done" in res.stderr and "row 2 failed" in res.stderr

    with pytest.raises(SystemExit):
        build_parser().parse_args(["batch", "--help"])
    text = capsys.readouterr().out
    for column in ("kind", "lipsync-image-multi", "left_audio", "mask_image", "output", "--jobs", "--out-dir"):
        assert column in text


def test_studio_batch_from_a_table_of_uploaded_files(jobs_folder, tmp_path):
    studio = Studio(limits=Limits(), upload_dir=config.private_dir(tmp_path / "gradio"))
    uploads = studio.upload_dir / "a1"
    uploads.mkdir()
    media = [str(shutil.copy(jobs_folder / n, uploads / Path(n).name)) for n in ("astronaut.png", "voice/hello.wav")]
    outside = tmp_path / "secret.png"
    shutil.copy(jobs_folder / "astronaut.png", outside)
    table = uploads / "jobs.csv"
    table.write_text(f"image,audio\nastronaut.png,voice/hello.wav\n{outside},hello.wav\nastronaut.png,https://x.org/a.wav\n")
    roots = studio.file_roots()

    rows, note = events.batch_preview(studio, str(table), media, roots=roots)
    assert [r[0] for r in rows] == ["1", "2", "3"] and rows[0][1:] == ["Talking image", "astronaut.png, hello.wav",
                                                                      "1-astronaut.mp4", "ready"]
    assert "not among the uploaded files" in rows[1][4]  # a path outside the uploads is never read
    assert "URLs are not fetched" in rows[2][4] and note.startswith("1 of 3 rows ready")
    with pytest.raises(Exception, match="must be a file uploaded"):
        events.run_batch(studio, str(outside), media, viewer=Viewer("s1", False), roots=roots)

    visitor = Viewer(session="visitor-1", owner=False)
    seen = []
    result = events.run_batch(studio, str(table), media, token=studio.new_job_token(), viewer=visitor, roots=roots,
                              progress=lambda f, d: seen.append(f))
    assert [r.status for r in result.summary.rows] == ["done", "failed", "failed"]
    assert seen and seen[-1] == 1.0 and all(a <= b for a, b in zip(seen, seen[1:]))
    assert {r.session for r in list_jobs()} == {"visitor-1"}
    with zipfile.ZipFile(result.archive) as z:
        assert z.namelist() == ["1-astronaut.mp4"]
    delivered = studio.deliver(result.archive)
    assert Path(delivered).parent.parent == studio.upload_dir

    again = events.run_batch(studio, str(table), media, viewer=visitor, roots=roots)
    assert [r.status for r in again.summary.rows] == ["skipped", "failed", "failed"]
    assert again.archive == result.archive
    # Another visitor with the same files renders their own copy: outputs are per session.
    other = events.run_batch(studio, str(table), media, viewer=Viewer("visitor-2", False), roots=roots)
    assert other.summary.rows[0].status == "done" and other.outputs != result.outputs


def test_studio_batch_pairs_by_name_with_options(jobs_folder, tmp_path):
    studio = Studio(limits=Limits(max_seconds=0.5), upload_dir=config.private_dir(tmp_path / "gradio"))
    up = studio.upload_dir / "b2"
    up.mkdir()
    visuals = [str(shutil.copy(jobs_folder / "astronaut.png", up / "hello.png")),
               str(shutil.copy(jobs_folder / "clips/pan.mp4", up / "bye.mp4"))]
    audios = [str(shutil.copy(jobs_folder / "voice" / n, up / n)) for n in ("hello.wav", "bye.wav")]
    rows, note = events.batch_preview(studio, None, (), visuals, audios, {"resolution": "480p", "seed": "4"},
                                      roots=studio.file_roots())
    # Sorted by name; the studio's limit applies to each row as it does to a tab's form.
    assert [r[1] for r in rows] == ["Video dub", "Talking image"]
    assert all("over this app's limit of 0 s" in r[4] for r in rows) and note.startswith("0 of 2 rows ready")
    studio = Studio(limits=Limits(), upload_dir=studio.upload_dir)
    result = events.run_batch(studio, None, (), visuals[:1], audios, {"resolution": "480p", "seed": "4"},
                              viewer=Viewer("v", False), roots=studio.file_roots())
    assert [(r.status, r.output.name) for r in result.summary.rows] == [("done", "1-hello.mp4")]
    [record] = [r for r in list_jobs() if r.status == "completed"]
    assert record.request["seed"] == 4 and record.request["resolution"] == "480p"
    with pytest.raises(Exception, match="seed: must be a whole number"):
        events.batch_rows(None, (), visuals, audios, {"seed": "x"})


def test_studio_batch_preview_over_the_wire(jobs_folder, tmp_path):
    """As a browser (or a hand-made request) meets it: uploaded files are previewed, others refused."""
    from test_ui_security import Running, file_data

    table = tmp_path / "jobs.csv"
    table.write_text("image,audio\nastronaut.png,hello.wav\n")
    with Running() as app:
        visitor = app.browser()
        media = [visitor.upload(jobs_folder / "astronaut.png"), visitor.upload(jobs_folder / "voice" / "hello.wav")]
        shown = visitor.call("batch-table", "change",
                             ["table", visitor.upload(table), media, None, None, "480p", "", ""])
        assert "error" not in shown, shown
        rows = shown["data"][0]["data"]  # a Dataframe update: {"headers", "data", ...}
        assert rows == [["1", "Talking image", "astronaut.png, hello.wav", "1-astronaut.mp4", "ready"]]
        refused = visitor.call("batch-table", "change",
                               ["table", file_data(table, "jobs.csv"), media, None, None, "480p", "", ""])
        assert "error" in refused and "astronaut" not in json.dumps(refused)
