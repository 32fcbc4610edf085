"""Regenerate the example media in ``assets/`` from public-domain sources and espeak-ng.

Usage: ``python tools/make_assets.py [--out DIR]`` (default: the repo's ``assets/``).

Everything is deterministic for a given set of tool versions: the photos come from
skimage / matplotlib's bundled sample data, speech from espeak-ng, and the video is
encoded with the ffmpeg binary that imageio-ffmpeg ships, with bit-exact flags so no
encoder version strings or timestamps end up in the files.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
HEIGHT = 512  # both photos are shown at this height
FPS = 25


@dataclass(frozen=True)
class Speech:
    """One espeak-ng clip. ``text`` may hold SSML breaks; ``transcript`` is the plain words."""

    file: str
    voice: str
    text: str
    transcript: str
    speed: int = 150


# Sentences are full of bilabials (b, p, m: the lips must close) and hold one clear pause,
# so a viewer can judge both lip closure and a mouth at rest.
SPEECH = (
    Speech(
        "speech_en.wav",
        "en-us",
        "Bob bought a big map of Boston. <break time='600ms'/> Maybe Pam will plan the trip.",
        "Bob bought a big map of Boston. Maybe Pam will plan the trip.",
    ),
    Speech(
        "speech_left.wav",
        "en-us",
        "Hi Pam, maybe we could bake a pie. <break time='500ms'/> Bring the blueberries.",
        "Hi Pam, maybe we could bake a pie. Bring the blueberries.",
    ),
    Speech(
        "speech_right.wav",
        "en-us+f3",
        "By all means, Bob! <break time='500ms'/> I will pick up the plums.",
        "By all means, Bob! I will pick up the plums.",
    ),
    Speech(
        "talking_audio.wav",  # temporary: muxed into talking.mp4, not kept
        "en-us",
        "My name is Eileen. <break time='400ms'/> Welcome aboard.",
        "My name is Eileen. Welcome aboard.",
    ),
)


def ffmpeg(*args: str) -> None:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", *args], check=True)


def save_rgb(path: Path, rgb: np.ndarray) -> None:
    import cv2

    # cv2's PNG writer is deterministic (no timestamps); Pillow adds nothing either, but cv2 is already a dependency.
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")


def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()  # 512x512 RGB


def hopper_path() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


def make_photos(out: Path) -> None:
    import cv2

    save_rgb(out / "portrait.png", astronaut())
    # Copied byte for byte: re-encoding a JPEG only loses quality.
    shutil.copyfile(hopper_path(), out / "hopper.jpg")

    hopper = cv2.cvtColor(cv2.imread(str(hopper_path())), cv2.COLOR_BGR2RGB)  # 512 wide x 600 tall
    width = round(hopper.shape[1] * HEIGHT / hopper.shape[0])
    right = cv2.resize(hopper, (width, HEIGHT), interpolation=cv2.INTER_AREA)
    save_rgb(out / "two_people.png", np.concatenate([astronaut(), right], axis=1))


def make_speech(out: Path, speech: Speech) -> Path:
    """espeak-ng -> 16-bit mono 22.05 kHz WAV, with 0.2 s of silence padded at the start."""
    target = out / speech.file
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(
            ["espeak-ng", "-m", "-v", speech.voice, "-s", str(speech.speed), "-w", str(raw), f"<speak>{speech.text}</speak>"],
            check=True,
        )
        # Trim espeak's trailing silence and start with a short rest, as a recorded clip would.
        subprocess.run(
            ["sox", str(raw), "-b", "16", "-c", "1", "-r", "22050", str(target),
             "reverse", "silence", "1", "0.05", "0.1%", "reverse", "pad", "0.2", "0.3"],
            check=True,
        )
    return target


def make_video(out: Path, audio: Path) -> None:
    """~3 s, 25 fps, 512x512 H.264 + AAC: the portrait with a slow push-in and a slight pan."""
    # zoompan rounds its crop window to whole pixels; upscaling 4x first keeps the motion smooth.
    zoom = "zoompan=z='1+0.10*on/75':x='(iw-iw/zoom)/2+iw*0.02*sin(on/30)':y='(ih-ih/zoom)*0.35'"
    vf = f"scale=2048:2048:flags=lanczos,{zoom}:d=1:s=512x512:fps={FPS},format=yuv420p"
    ffmpeg(
        "-loop", "1", "-framerate", str(FPS), "-i", str(out / "portrait.png"), "-i", str(audio),
        "-vf", vf, "-shortest",
        "-c:v", "libx264", "-preset", "medium", "-crf", "23", "-pix_fmt", "yuv420p", "-r", str(FPS),
        "-c:a", "aac", "-b:a", "96k", "-ar", "44100",
        "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
        "-movflags", "+faststart",
        str(out / "talking.mp4"),
    )


def build(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    make_photos(out)
    clips = {s.file: make_speech(out, s) for s in SPEECH}
    (out / "speech_en.txt").write_text(SPEECH[0].transcript + "\n", encoding="utf-8")
    make_video(out, clips["talking_audio.wav"])
    clips["talking_audio.wav"].unlink()
    return sorted(p for p in out.iterdir() if p.name != "README.md")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "assets", help="folder to write into (default: assets/)")
    args = parser.parse_args()
    for path in build(args.out):
        print(f"{path.stat().st_size / 1024:8.1f} KiB  {path}")


if __name__ == "__main__":
    main()
