"""Peak RSS and time of the audio stages of a job, for a short and a long clip, each in a fresh process.

    python bench/memory_audio.py                  # 10 s vs 300 s of espeak-ng speech (22.05 kHz WAV)
    python bench/memory_audio.py --codec aac      # the same speech as 48 kHz stereo AAC (.m4a)
    python bench/memory_audio.py --parts          # analyze_speech broken into its steps as well

The chain is the job's: ``load_audio(path, "audio", 16000)`` -> ``integrated_loudness(x, 16000)``
-> ``analyze_speech(x, 16000, n_frames, 25)`` (phones decoded by pocketsphinx). After each stage
the child prints ``ru_maxrss`` (the process's peak so far, so each step shows how far that stage
raised the peak) and the stage's wall time. Target: the long clip peaks <= ~30 MB above the short one.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_MB = 30.0

# Runs in the child: one clip, stage by stage. argv: path, seconds, parts (0/1).
CHILD = r"""
import json, resource, sys, time
from pathlib import Path

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

rows = []
t = time.perf_counter()
def mark(stage):
    global t
    now = time.perf_counter()
    rows.append({"stage": stage, "peak_mb": round(peak_mb(), 1), "seconds": round(now - t, 3)})
    t = now

import numpy as np
from lipsync.media.audio import integrated_loudness, load_audio
from lipsync.speech import analyze_speech
from lipsync.speech.phones import decode_phones, phone_decoder
decoder = phone_decoder()  # the CMU dictionary and acoustic model: a fixed cost, not per second of audio
mark("imports + decoder")
path, seconds, parts = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3] == "1"
n_frames = int(round(seconds * 25))
x = load_audio(path, "audio", 16000)
mark("load_audio")
lufs = integrated_loudness(x, 16000)
mark("integrated_loudness")
if parts:
    from lipsync.speech.features import frame_features, hop_voice_activity, speech_envelope
    env = speech_envelope(x, 16000, n_frames, 25)
    mark("  speech_envelope")
    feats = frame_features(x, 16000)
    mark("  frame_features")
    hops = hop_voice_activity(feats)
    mark("  hop_voice_activity")
    phones = decode_phones(x, decoder=decoder)
    mark("  decode_phones")
    del env, feats, hops, phones
track = analyze_speech(x, 16000, n_frames, 25)
mark("analyze_speech")
print(json.dumps({"rows": rows, "lufs": lufs, "samples": int(x.size), "phones": len(track.phones),
                  "open_mean": float(track.open.mean()), "speech": float(track.speech.mean())}))
"""


def make_clip(work: Path, seconds: float, codec: str) -> Path:
    sys.path.insert(0, str(REPO / "bench"))
    import run

    wav = run.speech(work / f"speech{seconds:g}.wav", seconds)
    if codec == "wav":
        return wav
    out = wav.with_suffix(".m4a")
    run.ffmpeg("-i", str(wav), "-ar", "48000", "-ac", "2", "-c:a", "aac", "-b:a", "128k", str(out))
    return out


def measure(path: Path, seconds: float, parts: bool) -> dict:
    res = subprocess.run([sys.executable, "-c", CHILD, str(path), str(seconds), "1" if parts else "0"],
                         capture_output=True, text=True, cwd=REPO)
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-2000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--short", type=float, default=10.0)
    parser.add_argument("--long", type=float, default=300.0)
    parser.add_argument("--codec", choices=("wav", "aac"), default="wav")
    parser.add_argument("--parts", action="store_true", help="also time analyze_speech's steps one by one")
    parser.add_argument("--json", type=Path, help="write the raw results here too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lipsync-memaudio-") as tmp:
        work = Path(tmp)
        results = {s: measure(make_clip(work, s, args.codec), s, args.parts) for s in (args.short, args.long)}
    short, long = results[args.short], results[args.long]
    print(f"| stage | peak RSS {args.short:g} s (MB) | peak RSS {args.long:g} s (MB) | difference | "
          f"time {args.short:g} s | time {args.long:g} s |")
    print("|---|---|---|---|---|---|")
    for a, b in zip(short["rows"], long["rows"]):
        print(f"| {a['stage']} | {a['peak_mb']:.0f} | {b['peak_mb']:.0f} | {b['peak_mb'] - a['peak_mb']:+.0f} | "
              f"{a['seconds']:.2f} s | {b['seconds']:.2f} s |")
    diff = long["rows"][-1]["peak_mb"] - short["rows"][-1]["peak_mb"]
    print(f"\nlong - short peak: {diff:+.1f} MB (target <= {TARGET_MB:g} MB; the {args.long:g} s float32 array alone "
          f"is {long['samples'] * 4 / 2**20:.1f} MB) -> {'OK' if diff <= TARGET_MB else 'OVER'}")
    print(f"loudness {short['lufs']:.2f} / {long['lufs']:.2f} LUFS, phones {short['phones']} / {long['phones']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
