"""`lipsync` command line: render, estimate cost, measure sync. Errors are one line on stderr, exit ≠ 0."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from . import kinds
from .engines import DEFAULT_ENGINE
from .errors import InputError, LipsyncError

EXIT_FAILED = 1  # the job ran and failed (bad input, no face, ...)
EXIT_USAGE = 2  # argparse's own code for bad arguments


def _add_common(p: argparse.ArgumentParser, *, render: bool = True) -> None:
    p.add_argument("--resolution", default="480p", help="480p (default) or 720p")
    if not render:
        return
    p.add_argument("--out", type=Path, help="output MP4 (default: LIPSYNC_HOME/outputs/<job id>.mp4)")
    p.add_argument("--seed", type=int, help="same inputs + same seed → identical frames")
    p.add_argument("--prompt", help="style words, e.g. 'calm', 'energetic smile', 'still'")
    p.add_argument("--mask-image", help="white = may change; confines the edit (and can pick the face)")
    p.add_argument("--engine", default=DEFAULT_ENGINE, help=f"engine name (default: {DEFAULT_ENGINE}; see `lipsync engines`)")
    p.add_argument("--download", action=argparse.BooleanOptionalAction, default=True,
                   help="download the engine's weights from the Hugging Face Hub first if they are missing "
                        "(default; once, into the hub cache). --no-download fails instead, naming the files "
                        "and the command to fetch them (the builtin engine needs none)")
    p.add_argument("--json", action="store_true", help="print the job record as JSON on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_media(p: argparse.ArgumentParser, mode: str, *, required: bool = True, render: bool = True) -> None:
    if mode == "video":
        p.add_argument("--video", required=required, help="video file or http(s) URL")
        p.add_argument("--audio", required=True, help="the new audio (file or URL)")
        # No `choices`: an unknown mode is the request's InputError('length_mode', ...), like every field.
        p.add_argument("--length-mode", default=kinds.DEFAULT_LENGTH_MODE,
                       help="when the audio is longer than the video: "
                            + "; ".join(f"{name}: {what}" for name, what in kinds.LENGTH_MODES.items())
                            + ". A longer video is cut to the audio in every mode. Local only: the hosted API "
                              "extends by its own rule")
        if render:
            p.add_argument("--transcript", help="what is said: improves phone timing (English)")
            p.add_argument("--face-index", type=int, help="which face to dub, counted left to right from 0")
            p.add_argument("--keep-background", type=float, metavar="DB",
                           help="keep the video's own audio (music, room) under the new speech at DB relative to "
                                "its level, e.g. -18 (-60 to 12; default: dropped)")
            p.add_argument("--compare", action="store_true",
                           help="also write <out>.compare.mp4: the source and the dub side by side")
    elif mode == "image":
        p.add_argument("--image", required=required, help="portrait image file or URL")
        p.add_argument("--audio", required=True, help="speech audio (file or URL)")
        if render:
            p.add_argument("--transcript", help="what is said: improves phone timing (English)")
            p.add_argument("--face-index", type=int, help="which face speaks, counted left to right from 0")
    else:
        p.add_argument("--image", required=required, help="image with two people")
        p.add_argument("--left-audio", required=True, help="what the person on the left says")
        p.add_argument("--right-audio", required=True, help="what the person on the right says")
        p.add_argument("--order", default="meanwhile", help="meanwhile (default), left_right or right_left")
        if render:
            p.add_argument("--left-transcript")
            p.add_argument("--right-transcript")
            p.add_argument("--left-face", type=_face_choice,
                           help="override the left speaker: a face index (left to right from 0) or a box x0,y0,x1,y1")
            p.add_argument("--right-face", type=_face_choice, help="override the right speaker: index or box")


def _face_choice(text: str):
    """`2` (a face index) or `x0,y0,x1,y1` (a box in the image's pixels)."""
    parts = text.split(",")
    try:
        if len(parts) == 1:
            return int(parts[0])
        if len(parts) == 4:
            return tuple(float(p) for p in parts)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"expected a face index or a box x0,y0,x1,y1, got {text!r}")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        """One line, like every other error (argparse would print the whole usage first)."""
        self.exit(EXIT_USAGE, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lipsync", description="Local, offline lip sync.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for kind in kinds.KINDS:
        mode = kind.tab
        p = sub.add_parser(mode, help=kind.summary)
        _add_media(p, mode)
        _add_common(p)

    cost = sub.add_parser("cost", help="what the hosted API would charge, in credits")
    cost_sub = cost.add_subparsers(dest="mode", required=True)
    for mode in kinds.TABS:
        p = cost_sub.add_parser(mode)
        _add_media(p, mode, required=False, render=False)
        _add_common(p, render=False)
        p.add_argument("--json", action="store_true")

    report = sub.add_parser("sync-report", help="measure lip sync of an output video against its audio")
    report.add_argument("video", type=Path)
    report.add_argument("audio", type=Path)
    report.add_argument("--transcript", help="what is said, for /p b m/ timing (English)")
    report.add_argument("--reference", type=Path, help="the source video (dub): PSNR of the face above the nose")
    report.add_argument("--face-index", type=int, help="which face to measure, left to right from 0")
    report.add_argument("--plot", type=Path, help="save a PNG plot here (default: next to the video)")
    report.add_argument("--json", action="store_true")

    sub.add_parser("engines", help="list engines and what they support")
    _add_batch(sub)  # `lipsync batch jobs.csv|jobs.jsonl`

    from .remote.cli import add_parser as add_remote
    from .server.cli import add_parser as add_keys
    from .models.cli import add_parser as add_models
    from .workers.cli import add_parser as add_workers

    add_remote(sub)  # `lipsync remote video|image|dialogue`; their handlers come with set_defaults(handler=...)
    add_keys(sub)  # `lipsync keys create|list|revoke`
    add_models(sub)  # `lipsync models list|download|verify|remove`
    add_workers(sub)  # `lipsync worker` and `lipsync workers` (Celery)
    return parser


class ProgressBar:
    """A one-line progress bar with stage and ETA on stderr (only when it is a terminal, or forced)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.start = time.monotonic()
        self.last = ""

    def __call__(self, fraction: float, stage: str) -> None:
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.start
        eta = f" ETA {elapsed / fraction * (1 - fraction):4.0f}s" if 0.05 < fraction < 1 else ""
        filled = int(30 * fraction)
        line = f"\r[{'#' * filled}{'.' * (30 - filled)}] {fraction * 100:5.1f}% {stage:<8}{eta}"
        if line != self.last:
            sys.stderr.write(line)
            sys.stderr.flush()
            self.last = line

    def done(self) -> None:
        if self.enabled and self.last:
            sys.stderr.write("\n")


def _request(args):
    from .requests import ImageRequest, MultiRequest, VideoRequest, validation_to_input_error
    from pydantic import ValidationError

    common = dict(resolution=args.resolution, seed=args.seed, prompt=args.prompt, mask_image=args.mask_image,
                  engine=args.engine)
    try:
        if args.command == "video":
            return VideoRequest(video=args.video, audio=args.audio, transcript=args.transcript,
                                face_index=args.face_index, length_mode=args.length_mode,
                                keep_background=args.keep_background, compare=args.compare, **common)
        if args.command == "image":
            return ImageRequest(image=args.image, audio=args.audio, transcript=args.transcript,
                                face_index=args.face_index, **common)
        return MultiRequest(image=args.image, left_audio=args.left_audio, right_audio=args.right_audio,
                            order=args.order, left_transcript=args.left_transcript,
                            right_transcript=args.right_transcript, left_face=args.left_face,
                            right_face=args.right_face, **common)
    except ValidationError as exc:
        raise validation_to_input_error(exc) from None


def _output_seconds(args) -> Optional[float]:
    """How long the output will be (the audio; a dialogue's by its order), or None if the media cannot be
    probed here (the job itself then says what is wrong)."""
    import tempfile

    from . import config, pricing

    try:
        with tempfile.TemporaryDirectory(dir=config.cache_dir()) as tmp:
            work = Path(tmp)
            if args.command == "dialogue":
                return pricing.estimate_multi(_duration(args.left_audio, "left_audio", work),
                                              _duration(args.right_audio, "right_audio", work), args.order).duration
            return _duration(args.audio, "audio", work)
    except (LipsyncError, ValueError, TypeError):
        return None


def cmd_render(args) -> int:
    from .engines import get_engine, speed_note
    from .jobs import run_job

    request = _request(args)
    note = speed_note(get_engine(request.engine), lambda: _output_seconds(args))
    if note:
        print(f"note: {note}", file=sys.stderr)
    bar = ProgressBar(enabled=not args.quiet and (sys.stderr.isatty() or os.environ.get("LIPSYNC_PROGRESS") == "1"))
    record = run_job(request, out_path=args.out, progress=bar, allow_download=args.download)
    bar.done()
    if args.json:
        print(record.model_dump_json(indent=2))
    if record.status != "completed":
        print(f"error: {record.error}", file=sys.stderr)
        return EXIT_FAILED
    for warning in record.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not args.json:
        print(record.output)
        if record.compare:
            print(record.compare)
    return 0


def _duration(value: Optional[str], field: str, workdir: Path) -> Optional[float]:
    from .media.fetch import resolve
    from .media.probe import probe

    if not value:
        return None
    info = probe(resolve(value, field, workdir), field)
    if info.duration is None:
        raise InputError(field, "has no duration (is it an image?)")
    return info.duration


def cmd_cost(args) -> int:
    import tempfile

    from . import config, pricing

    if args.resolution not in pricing.RATES:
        raise InputError("resolution", f"{args.resolution!r} is not allowed; expected 480p or 720p")
    with tempfile.TemporaryDirectory(dir=config.cache_dir()) as tmp:
        work = Path(tmp)
        if args.mode == "video":
            if args.length_mode not in kinds.LENGTH_MODES:
                raise InputError("length_mode", f"{args.length_mode!r} is not allowed; expected one of "
                                 f"{', '.join(kinds.LENGTH_MODES)}")
            est = pricing.estimate_video(_duration(args.audio, "audio", work), _duration(args.video, "video", work),
                                         args.resolution, length_mode=args.length_mode)
        elif args.mode == "image":
            est = pricing.estimate_image(_duration(args.audio, "audio", work), args.resolution)
        else:
            if args.order not in ("meanwhile", "left_right", "right_left"):
                raise InputError("order", f"{args.order!r} is not allowed; expected meanwhile, left_right or right_left")
            est = pricing.estimate_multi(_duration(args.left_audio, "left_audio", work),
                                         _duration(args.right_audio, "right_audio", work), args.order, args.resolution)
    print(json.dumps(est.to_dict(), indent=2) if args.json else est.summary())
    return 0


def cmd_sync_report(args) -> int:
    from .quality import sync_report

    plot = args.plot or args.video.with_suffix(".sync.png")
    report = sync_report(args.video, args.audio, transcript=args.transcript, reference=args.reference,
                         face_index=args.face_index, plot=plot)
    data = report.to_dict()
    data["plot"] = str(plot)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        for key, value in data.items():
            print(f"{key}: {value}")
    return 0 if report.passed() else EXIT_FAILED


def cmd_engines(args) -> int:
    from .engines import human_size, licences, list_engines

    for engine in list_engines():
        spec, avail = engine.SPEC, engine.availability()
        if avail.state == "ready":
            state = "ready"
        elif avail.state == "download":
            size = f" {human_size(avail.download_bytes)}" if avail.download_bytes else ""
            state = f"needs download{size}: lipsync models download {spec.name}"
        else:
            state = f"unavailable: {avail.reason}"
        print(f"{spec.name}: {spec.title} [{state}]")
        print(f"  modes: {', '.join(sorted(spec.modes))}; options: {', '.join(sorted(spec.options))}")
        print(f"  licences: {licences(spec)}; hardware: {spec.hardware}")
        if spec.prompt_words:
            print(f"  prompt words: {', '.join(spec.prompt_words)}")
    return 0


BATCH_HELP = """\
Render every row of a CSV (header = field names) or JSONL file (one JSON object a line) in one process.

Columns are the request fields, as in the REST API's formState:
  kind          lipsync-video, lipsync-image or lipsync-image-multi (or video, image, dialogue; `model` works
                too). Optional: video+audio is a dub, image+audio a talking image,
                image+left_audio+right_audio a dialogue
  video, image, audio, left_audio, right_audio, mask_image
                files (relative paths are read from the jobs file's folder) or http(s) URLs
  resolution    480p or 720p          seed, prompt, engine, transcript, face_index
  length_mode   bounce, loop, freeze or cut_audio (video); keep_background (dB, e.g. -18), compare (true)
  order         meanwhile, left_right or right_left (dialogue); left_transcript, right_transcript,
                left_face, right_face (an index, or a box "x0,y0,x1,y1")
  output        optional output file name (default: <row>-<stem of the video or image>.mp4)
Blank cells mean the default; lines starting with # are comments. Rows are counted from 1 (not the header).

A failed row never stops the others. Outputs appear only when complete, so running the same file again
skips the rows whose output exists. The summary lists done / failed (with the reason) / skipped rows and
the hosted API's credit estimate. Exit code 1 if any row failed.

Example jobs.csv:
  video,image,audio,resolution,seed
  clips/intro.mp4,,voice/intro.wav,720p,
  ,portrait.png,voice/hello.wav,,7
"""


def _add_batch(sub) -> None:
    p = sub.add_parser("batch", help="render every row of a CSV or JSONL file of jobs",
                       description=BATCH_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", type=Path, help="jobs.csv or jobs.jsonl")
    p.add_argument("--out-dir", type=Path, help="where outputs go (default: <file's folder>/<file stem>-outputs)")
    p.add_argument("--jobs", type=int, default=1, help="rows rendered at once, in threads (default 1)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    p.add_argument("--quiet", action="store_true", help="no line per finished row on stderr")
    p.set_defaults(handler=cmd_batch)


def cmd_batch(args) -> int:
    from .jobs import batch

    if args.jobs < 1:
        raise InputError("jobs", "must be 1 or more")
    source = args.file.resolve()
    out_dir = (args.out_dir or source.parent / f"{source.stem}-outputs").resolve()
    rows = batch.plan(batch.read_rows(source), out_dir, batch.local_files(source.parent))
    if not rows:
        raise InputError("jobs", f"{args.file} has no rows")
    out_dir.mkdir(parents=True, exist_ok=True)
    for row in rows:  # refused before anything runs: said at once
        if row.status != "pending" and not args.quiet:
            print(f"row {row.number} {row.status}: {row.error or row.output.name}", file=sys.stderr)

    def finished(fraction, label, row):
        if row is not None and not args.quiet:
            what = row.output.name if row.status == "done" else row.error
            print(f"[{fraction:4.0%}] row {row.number} {row.status}: {what}", file=sys.stderr)

    summary = batch.run_batch(rows, jobs=args.jobs, progress=finished)
    print(json.dumps(summary.to_dict(), indent=2) if args.json else f"{summary.text()}\nOutputs: {out_dir}")
    return EXIT_FAILED if summary.failed else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    logging.basicConfig(level=os.environ.get("LIPSYNC_LOG", "WARNING"), format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    commands = {**dict.fromkeys(kinds.TABS, cmd_render), "cost": cmd_cost,
                "sync-report": cmd_sync_report, "engines": cmd_engines}
    try:
        return commands[args.command](args) if args.command in commands else args.handler(args)
    except LipsyncError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one line for the user; details with LIPSYNC_LOG=DEBUG
        logging.getLogger("lipsync").debug("unexpected error", exc_info=True)
        print(f"error: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
