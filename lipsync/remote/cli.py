"""`lipsync remote video|image|dialogue`: run a job on the hosted API (or a local server, same contract)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .. import kinds
from ..errors import InputError

MODEL_BY_MODE = {k.tab: k.name for k in kinds.KINDS}


def add_parser(sub) -> None:
    from ..cli import _add_media

    remote = sub.add_parser("remote", help="run a job on the hosted Lipsync API (media as URLs)")
    remote_sub = remote.add_subparsers(dest="mode", required=True)
    for mode in MODEL_BY_MODE:
        p = remote_sub.add_parser(mode)
        _add_media(p, mode, render=False)
        p.add_argument("--resolution", default="480p", help="480p (default) or 720p")
        p.add_argument("--seed", type=int)
        p.add_argument("--prompt")
        p.add_argument("--mask-image", help="mask image URL")
        p.add_argument("--api-url", help="API base URL (default: LIPSYNC_API_URL or the hosted API)")
        p.add_argument("--api-key", help="API key (default: LIPSYNC_API_KEY)")
        p.add_argument("--webhook", help="https URL the server POSTs the finished job object to")
        p.add_argument("--out", type=Path, help="download the result here")
        p.add_argument("--json", action="store_true", help="print the final job object as JSON")
        p.add_argument("--no-wait", action="store_true", help="print the job id and return at once")
        p.add_argument("--poll-interval", type=float, default=5.0, help="seconds between status checks (default 5)")
        p.add_argument("--timeout", type=float, default=900.0, help="give up waiting after this many seconds")
        p.set_defaults(handler=cmd_remote)


def _form_state(args: argparse.Namespace) -> dict:
    state = {"resolution": args.resolution, "seed": args.seed, "prompt": args.prompt, "mask_image": args.mask_image}
    if args.mode == "video":
        state.update(video=args.video, audio=args.audio)
        if args.length_mode != kinds.DEFAULT_LENGTH_MODE:
            state["length_mode"] = args.length_mode  # a local server's extension; dropped for the hosted API
    elif args.mode == "image":
        state.update(image=args.image, audio=args.audio)
    else:
        state.update(image=args.image, left_audio=args.left_audio, right_audio=args.right_audio, order=args.order)
    return {k: v for k, v in state.items() if v is not None}


def _split_local_files(state: dict, hosted: bool) -> dict[str, Path]:
    """Local paths become uploads for a local server; the hosted API needs URLs (or LIPSYNC_PUBLIC_URL)."""
    from .mirror import MEDIA_FIELDS, is_url, public_media_url

    files = {}
    for field in MEDIA_FIELDS:
        value = state.get(field)
        if not value or is_url(value):
            continue
        if hosted:
            state[field] = public_media_url(value, field)
            continue
        path = Path(value).expanduser()
        if not path.is_file():
            raise InputError(field, f"file not found: {path}")
        files[field] = path
        del state[field]
    return files


def cmd_remote(args: argparse.Namespace) -> int:
    from .client import HostedClient, RemoteError

    state = _form_state(args)
    with HostedClient(args.api_url, args.api_key) as client:
        if client.is_hosted and state.pop("length_mode", None):
            print("note: length_mode is local only; the hosted API truncates or extends by its own rule",
                  file=sys.stderr)
        files = _split_local_files(state, hosted=client.is_hosted)
        submitted = client.submit(MODEL_BY_MODE[args.mode], state, webhook=args.webhook, files=files or None)
        print(f"job {submitted['id']} submitted to {client.base_url}", file=sys.stderr)
        if args.no_wait:
            print(json.dumps(submitted, indent=2) if args.json else submitted["id"])
            return 0
        show = sys.stderr.isatty() or os.environ.get("LIPSYNC_PROGRESS") == "1"
        progress = (lambda fraction, stage: print(f"\r{stage:<40}", end="", file=sys.stderr, flush=True)) \
            if show else None
        try:
            job = client.wait(submitted["id"], poll_interval=args.poll_interval, timeout=args.timeout,
                              progress=progress)
        except RemoteError as exc:
            if args.json and exc.job is not None:
                print(json.dumps(exc.job, indent=2))
            raise
        finally:
            if show:
                print(file=sys.stderr)
        if args.out and job.get("output"):
            client.download(job["output"], args.out)
    if args.json:
        print(json.dumps(job, indent=2))
    else:
        print(args.out if args.out else job.get("output"))
    return 0
