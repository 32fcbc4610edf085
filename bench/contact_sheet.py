"""Before/after contact sheets of the built-in engine's open mouth.

    python bench/contact_sheet.py               # before = branch `main`, after = this working tree
    python bench/contact_sheet.py --before REV  # any git revision

For the astronaut (teeth showing) and Grace Hopper (lips closed), renders the mouth at four openings
with each tree's engine (in a subprocess, so the two versions never share a process), scales each frame
to 480 px high as a 480p output would be, crops the lower face and writes, per photo, a sheet with the
"before" row above the "after" row (crops shown at 2x, nearest neighbour, so pixels stay visible):
docs/contact/<photo>.png.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "contact"  # documentation, not example media (tools/make_assets.py owns assets/)
OPENINGS = (0.25, 0.5, 0.75, 1.0)  # of the engine's widest opening
PHOTOS = ("astronaut", "hopper")


def photo(name: str) -> np.ndarray:
    if name == "astronaut":
        from skimage import data

        return data.astronaut()
    import matplotlib.cbook
    import matplotlib.image

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        return np.asarray(matplotlib.image.imread(f, format="jpg"))


def render(out_path: str) -> None:
    """In the tree on sys.path: 480p crops of each photo at each opening, saved as one .npz."""
    import cv2

    from lipsync.engines.base import RenderPlan, Speaker
    from lipsync.engines.builtin import BuiltinRenderer
    from lipsync.face import FaceAnalyzer
    from lipsync.face import regions as R
    from lipsync.speech import MouthTrack

    crops = {}
    with FaceAnalyzer() as fa:
        for name in PHOTOS:
            img = photo(name)
            face = fa.detect(img)[0]
            n = len(OPENINGS)
            z = np.zeros(n, np.float32)
            track = MouthTrack(25, np.array(OPENINGS, np.float32), z, z, np.ones(n, bool), [], "acoustic")
            plan = RenderPlan(model="lipsync-image", size=(img.shape[1], img.shape[0]), fps=25, n_frames=n,
                              speakers=[Speaker(track, face)], seed=1)
            r = BuiltinRenderer(plan)
            r.motion = None  # no head motion: the columns differ only in the mouth
            k = 480 / img.shape[0]
            lips = face.landmarks[list(R.LIPS_OUTER)] * k
            (x0, y0), (x1, y1) = lips.min(axis=0), lips.max(axis=0)
            w = x1 - x0
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            box = np.s_[int(cy - 0.75 * w): int(cy + 0.95 * w), int(cx - 0.95 * w): int(cx + 0.95 * w)]
            frames = []
            for i in range(n):
                out = r.render(img, i, [face])
                small = cv2.resize(out, (round(img.shape[1] * k), 480), interpolation=cv2.INTER_AREA)
                frames.append(small[box])
            crops[name] = np.stack(frames)
    np.savez(out_path, **crops)


def tree_of(rev: str, into: Path) -> Path:
    """The package as it is at `rev`, extracted under `into`."""
    data = subprocess.run(["git", "-C", str(REPO), "archive", rev, "lipsync"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def crops_from(root: Path, tmp: Path, tag: str) -> dict[str, np.ndarray]:
    out = tmp / f"{tag}.npz"
    env = dict(os.environ, PYTHONPATH=str(root), HF_HUB_OFFLINE="1")
    subprocess.run([sys.executable, __file__, "--render", str(out)], check=True, env=env, cwd=tmp)
    with np.load(out) as z:
        return {k: z[k] for k in z.files}


def sheet(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    import cv2

    def row(frames: np.ndarray) -> np.ndarray:
        cells = [cv2.resize(f, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST) for f in frames]
        pad = np.full((cells[0].shape[0], 4, 3), 255, np.uint8)
        return np.concatenate(sum(([c, pad] for c in cells), [])[:-1], axis=1)

    a, b = row(before), row(after)
    return np.concatenate([a, np.full((4, a.shape[1], 3), 255, np.uint8), b], axis=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default="main", help="git revision for the top row (default: main)")
    ap.add_argument("--render", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.render:
        render(args.render)
        return
    import cv2

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        before = crops_from(tree_of(args.before, tmp / "before"), tmp, "before")
        after = crops_from(REPO, tmp, "after")
        for name in PHOTOS:
            path = OUT / f"{name}.png"
            part = path.with_suffix(".part.png")
            cv2.imwrite(str(part), cv2.cvtColor(sheet(before[name], after[name]), cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_PNG_COMPRESSION, 9])
            part.replace(path)
            print(f"{path.relative_to(REPO)}: top {args.before}, bottom this tree; openings {OPENINGS}")


if __name__ == "__main__":
    main()
