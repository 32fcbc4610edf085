"""Benchmark: real-time factor and peak RSS of whole `lipsync` CLI runs, beside the bare round-trip floor.

    python bench/run.py            # 10 s clips, all modes at 480p and 720p, plus the 5-minute memory check
    python bench/run.py --quick    # skip the 5-minute runs
    python bench/run.py --sync     # also score lip sync of each output with `lipsync sync-report`

Real-time factor = seconds of output / seconds of processing (wall clock of the whole process, imports
included). The floor is a bare Python round trip of the same clip: decode → numpy frames → libx264
encode, no processing. Results go to stdout as a Markdown table and to bench/out/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"
FFMPEG = None


def ffmpeg(*args: str) -> None:
    global FFMPEG
    if FFMPEG is None:
        import imageio_ffmpeg

        FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
    subprocess.run([FFMPEG, "-y", "-loglevel", "error", *args], check=True)


def speech(path: Path, seconds: float) -> Path:
    """Espeak-ng sentences with pauses, repeated to `seconds`."""
    import soundfile as sf

    parts = []
    texts = ["Bob bought a map of the moon.", "Maybe Pam will paint it purple.", "Hello, how are you doing today?",
             "We met my mother at the museum."]
    for i, text in enumerate(texts):
        wav = path.with_name(f"part{i}.wav")
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), text], check=True)
        x, sr = sf.read(str(wav), dtype="float32")
        parts += [x, np.zeros(int(0.4 * sr), np.float32)]
    one = np.concatenate(parts)
    reps = int(np.ceil(seconds * sr / len(one)))
    sf.write(str(path), np.tile(one, reps)[: int(seconds * sr)], sr)
    return path


def portrait_video(path: Path, seconds: float, size: int = 1024) -> Path:
    """The bundled portrait with a slow pan, at a size that both 480p and 720p outputs downscale from."""
    ffmpeg("-loop", "1", "-i", str(REPO / "assets" / "portrait.png"), "-t", str(seconds), "-r", "25",
           "-vf", f"scale={size + 64}:{size + 64},crop={size}:{size}:x='32+24*sin(t/2)':y=32,format=yuv420p",
           "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", str(path))
    return path


def run_measured(cmd: list[str], env: dict) -> tuple[float, int, str]:
    """Wall seconds and peak RSS (kB) of one process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out, err = proc.stdout.read().decode(), proc.stderr.read().decode()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {err.strip()[-500:]}")
    return wall, usage.ru_maxrss, out


def floor_fps(source: Path, size: tuple[int, int], n_frames: int, still: bool) -> float:
    """Bare round trip in Python: decode (or load the still) → numpy → libx264, no processing."""
    code = f"""
import time, numpy as np
from pathlib import Path
from lipsync.media.video import VideoSource, read_image
from lipsync.media.writer import VideoWriter
import cv2
t = time.perf_counter()
audio = np.zeros({n_frames} * 48000 // 25, np.float32); audio[::97] = 0.01
with VideoWriter(Path('{OUT}/floor.mp4'), {size}, audio, 48000) as w:
    if {still}:
        frame = cv2.resize(read_image(Path('{source}'), 'image'), {size}, interpolation=cv2.INTER_AREA)
        for _ in range({n_frames}): w.write(frame)
    else:
        with VideoSource(Path('{source}'), 'video', {size}) as src:
            for frame in src.frames({n_frames}): w.write(frame)
print({n_frames} / (time.perf_counter() - t))
"""
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="skip the 5-minute memory runs")
    parser.add_argument("--sync", action="store_true", help="also run sync-report on each output")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="lipsync-bench-"))
    env = {**os.environ, "LIPSYNC_HOME": str(work / "home"), "HF_HUB_OFFLINE": "1"}
    cli = [sys.executable, "-m", "lipsync.cli"]

    audio = speech(work / "speech.wav", args.seconds)
    half = speech(work / "half.wav", args.seconds / 2)
    video = portrait_video(work / "source.mp4", args.seconds)
    jobs = {
        "video": ["video", "--video", str(video), "--audio", str(audio)],
        "image": ["image", "--image", str(REPO / "assets" / "portrait.png"), "--audio", str(audio)],
        "dialogue": ["dialogue", "--image", str(REPO / "assets" / "two_people.png"), "--left-audio", str(half),
                     "--right-audio", str(half), "--order", "left_right"],
    }
    rows = []
    for mode, job in jobs.items():
        for res in ("480p", "720p"):
            out = OUT / f"{mode}-{res}.mp4"
            wall, rss, stdout = run_measured(cli + job + ["--resolution", res, "--out", str(out), "--seed", "1",
                                                          "--json", "--quiet"], env)
            record = json.loads(stdout)
            import av

            with av.open(str(out)) as c:
                w, h = c.streams.video[0].width, c.streams.video[0].height
                n_frames = c.streams.video[0].frames
            seconds = record["duration"]
            still = mode != "video"
            source = video if mode == "video" else REPO / "assets" / ("portrait.png" if mode == "image" else "two_people.png")
            floor = floor_fps(source, (w, h), n_frames, still)
            row = {"mode": mode, "resolution": res, "size": f"{w}x{h}", "seconds": seconds, "wall_s": round(wall, 2),
                   "rtf": round(seconds / wall, 2), "fps": round(n_frames / wall, 1), "peak_rss_mb": round(rss / 1024),
                   "floor_fps": round(floor), "timings_ms": record["timings"]}
            if args.sync and mode != "dialogue":
                sync_cmd = cli + ["sync-report", str(out), str(audio), "--json"]
                if mode == "video":
                    sync_cmd += ["--reference", str(video)]
                rep = subprocess.run(sync_cmd, capture_output=True, text=True, env=env, cwd=REPO)
                row["sync"] = json.loads(rep.stdout) if rep.stdout.strip().startswith("{") else rep.stderr.strip()
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)

    memory = []
    if not args.quick:
        long_audio = speech(work / "long.wav", 300)
        long_video = portrait_video(work / "long.mp4", 300, size=768)
        short_video = portrait_video(work / "short.mp4", args.seconds, size=768)
        for mode, short_job, long_job in (
            ("video", ["video", "--video", str(short_video), "--audio", str(audio)],
             ["video", "--video", str(long_video), "--audio", str(long_audio)]),
            ("image", jobs["image"], ["image", "--image", str(REPO / "assets" / "portrait.png"), "--audio", str(long_audio)]),
        ):
            (w10, r10, _), (w300, r300, _) = (run_measured(cli + job + ["--out", str(OUT / f"mem-{mode}.mp4"), "--quiet"], env)
                                              for job in (short_job, long_job))
            memory.append({"mode": mode, "rss_10s_mb": round(r10 / 1024), "rss_300s_mb": round(r300 / 1024),
                           "ratio": round(r300 / r10, 3), "wall_300s": round(w300, 1), "rtf_300s": round(300 / w300, 2)})
            print(json.dumps(memory[-1]), file=sys.stderr)

    print("| mode | res | output | RTF (× real time) | frames/s | floor frames/s | peak RSS | decode / analysis / render / encode (ms) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        t = r["timings_ms"]
        print(f"| {r['mode']} | {r['resolution']} | {r['size']}, {r['seconds']:.1f} s | {r['rtf']} | {r['fps']} | "
              f"{r['floor_fps']} | {r['peak_rss_mb']} MB | {t['decode']} / {t['analysis']} / {t['render']} / {t['encode']} |")
    if memory:
        print("\n| mode | peak RSS 10 s | peak RSS 5 min | ratio | 5-min RTF |")
        print("|---|---|---|---|---|")
        for m in memory:
            print(f"| {m['mode']} | {m['rss_10s_mb']} MB | {m['rss_300s_mb']} MB | {m['ratio']} | {m['rtf_300s']} |")
    (OUT / "results.json").write_text(json.dumps({"runs": rows, "memory": memory}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
