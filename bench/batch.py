"""A batch pays the start-up cost once: 10 short image jobs as one `lipsync batch` against 10 separate
`lipsync image` runs, whole processes, wall time.

    python bench/batch.py [--jobs 10] [--runs 2] [--threads 2]

Each job is the bundled portrait with its own espeak-ng sentence (about 2 s). Each way runs in a fresh
empty LIPSYNC_HOME; the order of the two ways alternates between runs, so a busier machine late in the
run does not favour one. Every output is checked: present, and as long as its speech.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SENTENCES = [
    "Bob made a map of the bay.", "Maybe the mail came by noon.", "Please pass the bread and butter.",
    "We met at the museum at five.", "Pack the blue bag for the trip.", "My mother baked a plum pie.",
    "The band played by the pier.", "Bring me a cup of warm milk.", "Paul bought a pair of boots.",
    "Mind the puddle by the path.", "Big maps make poor umbrellas.", "Both boats bobbed in the bay.",
]


def speech(path: Path, text: str) -> Path:
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), text], check=True)
    return path


def check_outputs(outputs: list[Path], audios: list[Path]) -> None:
    sys.path.insert(0, str(REPO))
    from lipsync.media.probe import probe

    for out, audio in zip(outputs, audios):
        if not out.is_file():
            raise SystemExit(f"missing output {out}")
        got, want = probe(out, "output").duration, probe(audio, "audio").duration
        if abs(got - want) > 0.1:
            raise SystemExit(f"{out.name}: {got:.2f} s, its speech is {want:.2f} s")


def timed(cmd: list[str], env: dict) -> float:
    started = time.perf_counter()
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"{' '.join(cmd[:4])}... failed: {res.stderr.strip()[-400:]}")
    return time.perf_counter() - started


def separate(work: Path, audios: list[Path], portrait: Path, env: dict) -> tuple[float, list[Path]]:
    outs = [work / "separate" / f"{i + 1}.mp4" for i in range(len(audios))]
    started = time.perf_counter()
    for audio, out in zip(audios, outs):
        timed([sys.executable, "-m", "lipsync.cli", "image", "--image", str(portrait), "--audio", str(audio),
               "--seed", "1", "--out", str(out), "--quiet"], env)
    return time.perf_counter() - started, outs


def batched(work: Path, audios: list[Path], portrait: Path, env: dict, threads: int) -> tuple[float, list[Path]]:
    table = work / f"jobs-{threads}.csv"
    with open(table, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "audio", "seed"])
        for audio in audios:
            w.writerow([portrait, audio, 1])
    out_dir = work / f"batch-{threads}"
    seconds = timed([sys.executable, "-m", "lipsync.cli", "batch", str(table), "--out-dir", str(out_dir),
                     "--jobs", str(threads), "--quiet"], env)
    return seconds, [out_dir / f"{i + 1}-{portrait.stem}.mp4" for i in range(len(audios))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10, help="jobs in the batch (default 10)")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="also time `--jobs N` (0: skip)")
    args = parser.parse_args()
    portrait = REPO / "assets" / "portrait.png"
    results: dict[str, list[float]] = {"separate": [], "batch": [], "threads": []}
    with tempfile.TemporaryDirectory(prefix="lipsync-bench-batch-") as tmp:
        media = Path(tmp) / "media"
        media.mkdir()
        audios = [speech(media / f"s{i + 1}.wav", SENTENCES[i % len(SENTENCES)]) for i in range(args.jobs)]
        for run in range(args.runs):
            ways = ["separate", "batch"] + (["threads"] if args.threads > 1 else [])
            for way in ways if run % 2 == 0 else ways[::-1]:
                work = Path(tmp) / f"run{run}-{way}"
                (work / "home").mkdir(parents=True)
                env = {**os.environ, "LIPSYNC_HOME": str(work / "home"), "HF_HUB_OFFLINE": "1"}
                if way == "separate":
                    seconds, outs = separate(work, audios, portrait, env)
                else:
                    seconds, outs = batched(work, audios, portrait, env, args.threads if way == "threads" else 1)
                check_outputs(outs, audios)
                results[way].append(seconds)
                print(f"run {run + 1} {way:<8} {seconds:6.1f} s", flush=True)
        total_audio = sum(__import__("soundfile").info(str(a)).duration for a in audios)
    sep, one = statistics.median(results["separate"]), statistics.median(results["batch"])
    print(f"\n{args.jobs} image jobs, {total_audio:.1f} s of speech in all (median of {args.runs} runs):")
    print(f"  {args.jobs} separate `lipsync image` runs: {sep:.1f} s ({sep / args.jobs:.2f} s a job)")
    print(f"  one `lipsync batch`:                 {one:.1f} s ({one / args.jobs:.2f} s a job); "
          f"{sep / one:.2f}x faster, {(sep - one) / max(1, args.jobs - 1):.2f} s saved per extra job")
    if results["threads"]:
        thr = statistics.median(results["threads"])
        print(f"  one `lipsync batch --jobs {args.threads}`:        {thr:.1f} s ({sep / thr:.2f}x faster than separate)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
