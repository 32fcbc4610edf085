"""`python -m lipsync.server [--host H] [--port P]`: the REST API alone, without the UI (headless hosts)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys

from . import create_app, startup_warnings
from .settings import ServerSettings


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lipsync.server", description="Lipsync Studio REST API")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--workers", type=int, help="jobs rendered at once (default: LIPSYNC_WORKERS or 1)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("LIPSYNC_LOG", "INFO"), format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per fetch; webhook URLs may hold tokens

    import uvicorn

    settings = ServerSettings.from_env()
    if args.workers:
        settings = dataclasses.replace(settings, workers=max(1, args.workers))
    # The API has no UI to protect, so only the private-URL warning can apply.
    for warning in startup_warnings(args.host, share=False, auth="no UI"):
        print(f"warning: {warning}", file=sys.stderr)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning", proxy_headers=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
