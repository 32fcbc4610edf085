"""Lip-shape benchmark: the built-in engine on speech whose phoneme times are known exactly.

    python bench/lips.py                  # every held-out item (sentences and voices never tuned on)
    python bench/lips.py --quick          # 6 held-out items at 160 words/min
    python bench/lips.py --split tune     # the tuning half, to tune on
    python bench/lips.py --transcript     # give the engine the transcript too (default: audio only)

Each item of ``lipsync.quality.groundtruth.corpus`` is spoken by libespeak-ng (which reports where it put
every phoneme), rendered on a still photo (Grace Hopper and the astronaut, alternating) with the
built-in engine, and measured on the output by an independent FaceMesh pass (``sync_report`` with the
ground-truth phones): /p b m/ with the lips closed within ±1 frame, mouth width on rounded over spread
vowels, opening-vs-envelope r at the best lag, and the mouth closed in pauses. Prints Markdown tables;
writes bench/out/lips.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"
sys.path.insert(0, str(REPO))


def photos(folder: Path) -> dict[str, Path]:
    import cv2
    import matplotlib.cbook
    import matplotlib.image
    from skimage import data

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        hopper = np.asarray(matplotlib.image.imread(f, format="jpg"))
    out = {}
    for name, rgb in (("hopper", hopper), ("astronaut", data.astronaut())):
        out[name] = folder / f"{name}.png"
        cv2.imwrite(str(out[name]), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return out


def measure(item, photo: Path, work: Path, *, transcript: bool) -> dict:
    from lipsync.media.audio import write_wav
    from lipsync.pipeline import render
    from lipsync.quality import sync_report
    from lipsync.quality.reference import from_ground_truth
    from lipsync.requests import ImageRequest

    audio, phones = item.synthesize()
    wav = work / f"{item.name}.wav"
    write_wav(wav, audio, 16000)
    video = work / f"{item.name}-{photo.stem}.mp4"
    t0 = time.perf_counter()
    render(ImageRequest(image=str(photo), audio=str(wav), seed=1, transcript=item.text if transcript else None), video)
    render_s = time.perf_counter() - t0
    report = sync_report(video, wav, phones=from_ground_truth(phones))
    d = report.to_dict()
    hits = round((d["bilabial_closed"] or 0.0) * d["n_bilabials"])
    return {"item": item.name, "voice": item.voice, "rate": item.rate, "sentence": item.sentence, "photo": photo.stem,
            "seconds": round(audio.size / 16000, 2), "render_s": round(render_s, 2), "bilabial_hits": hits,
            **{k: d[k] for k in ("n_bilabials", "bilabial_closed", "rounding", "n_rounded", "n_spread", "r",
                                 "best_lag", "silence_closed", "face_found")}}


def summary(rows: list[dict]) -> dict:
    hits, n = sum(r["bilabial_hits"] for r in rows), sum(r["n_bilabials"] for r in rows)
    rounding = [r["rounding"] for r in rows if r["rounding"] is not None]
    silence = [r["silence_closed"] for r in rows if r["silence_closed"] is not None]
    return {"items": len(rows), "bilabial_hits": hits, "n_bilabials": n,
            "bilabial": hits / n if n else None,
            "rounding_mean": float(np.mean(rounding)) if rounding else None,
            "rounding_min": min(rounding) if rounding else None, "rounding_max": max(rounding) if rounding else None,
            "r_mean": float(np.mean([r["r"] for r in rows])), "r_min": min(r["r"] for r in rows),
            "lags": sorted({r["best_lag"] for r in rows}),
            "silence_closed": float(np.mean(silence)) if silence else None}


def table(groups: dict[str, list[dict]], title: str) -> str:
    lines = [f"| {title} | items | lips closed on /p b m/ | width rounded/spread | r (min) | lags | closed in silences |",
             "|---|---|---|---|---|---|---|"]
    for name, rows in groups.items():
        s = summary(rows)
        bil = f"{s['bilabial_hits']} of {s['n_bilabials']} ({s['bilabial']:.0%})" if s["bilabial"] is not None else "–"
        rnd = (f"{s['rounding_mean']:.3f} ({s['rounding_min']:.2f}–{s['rounding_max']:.2f})"
               if s["rounding_mean"] is not None else "–")
        sil = f"{s['silence_closed']:.0%}" if s["silence_closed"] is not None else "–"
        lags = ",".join(f"{lag:+d}" for lag in s["lags"])
        lines.append(f"| {name} | {s['items']} | {bil} | {rnd} | {s['r_mean']:.2f} ({s['r_min']:.2f}) | {lags} | {sil} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    from lipsync.quality.groundtruth import corpus

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=("held-out", "tune"), default="held-out")
    ap.add_argument("--quick", action="store_true", help="2 sentences per voice at 160 words/min")
    ap.add_argument("--transcript", action="store_true", help="give the engine the transcript")
    args = ap.parse_args(argv)

    items = corpus(args.split)
    if args.quick:
        per_voice: dict[str, list] = defaultdict(list)
        for item in items:
            if item.rate == 160 and len(per_voice[item.voice]) < 2:
                per_voice[item.voice].append(item)
        items = [i for group in per_voice.values() for i in group]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ.setdefault("LIPSYNC_HOME", str(work / "home"))  # keep the user's data folder untouched
        pics = list(photos(work).values())
        for k, item in enumerate(items):
            row = measure(item, pics[k % len(pics)], work, transcript=args.transcript)
            rows.append(row)
            print(f"[{k + 1}/{len(items)}] {row['item']} on {row['photo']}: /p b m/ {row['bilabial_hits']}/"
                  f"{row['n_bilabials']}, rounding {row['rounding']}, r {row['r']} lag {row['best_lag']}, "
                  f"silence {row['silence_closed']}", file=sys.stderr, flush=True)
    by = lambda key: {str(v): [r for r in rows if r[key] == v] for v in sorted({r[key] for r in rows})}  # noqa: E731
    engine_input = "audio and transcript" if args.transcript else "audio only"
    print(f"\n## Built-in engine, {args.split} half ({len(rows)} items, {engine_input}), measured against espeak-ng ground truth\n")
    print(table({"all": rows}, "set"))
    print()
    print(table(by("voice"), "voice"))
    print()
    print(table(by("rate"), "words/min"))
    print()
    print(table(by("photo"), "photo"))
    OUT.mkdir(parents=True, exist_ok=True)
    name = f"lips-{args.split}{'-quick' if args.quick else ''}{'-transcript' if args.transcript else ''}.json"
    (OUT / name).write_text(json.dumps({"summary": summary(rows), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
