"""Lipsync Studio: the Gradio UI and the REST API (`/api/v1`) on one port.

    python app.py [--host 127.0.0.1] [--port 7860] [--share] [--auth USER:PASSWORD]

This is also the Hugging Face Space entry point (README front matter: `app_file: app.py`).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from typing import Optional, Sequence

# Before Gradio is imported: no analytics calls (the app must work offline).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    on_space = bool(os.environ.get("SPACE_ID"))
    parser = argparse.ArgumentParser(prog="app.py", description="Lipsync Studio: UI and REST API on one port.")
    host = os.environ.get("GRADIO_SERVER_NAME") or ("0.0.0.0" if on_space else "127.0.0.1")
    port = int(os.environ.get("GRADIO_SERVER_PORT") or os.environ.get("PORT") or 7860)
    parser.add_argument("--host", default=host, help="address to bind (default 127.0.0.1; a Space binds 0.0.0.0)")
    parser.add_argument("--port", type=int, default=port, help="port for both the UI and /api/v1 (default 7860)")
    parser.add_argument("--share", action="store_true", help="also make a temporary public gradio.live link")
    parser.add_argument("--auth", default=os.environ.get("LIPSYNC_AUTH") or None, metavar="USER:PASSWORD",
                        help="password-protect the UI; prefer setting LIPSYNC_AUTH (the default), as other users "
                             "can read a command line in `ps`. The API always needs a key")
    args = parser.parse_args(argv)
    if args.auth is not None and ":" not in args.auth:
        parser.error("--auth must be USER:PASSWORD")
    return args


def _startup_warnings(host: str, share: bool, auth: Optional[str]) -> list[str]:
    from lipsync.server import startup_warnings

    return startup_warnings(host, share, auth)


def build_app(studio, auth: Optional[str] = None, *, host: str = "127.0.0.1", access=None):
    """(the REST API's FastAPI app with the UI mounted at "/" behind the studio's guard, the Blocks).
    `app.state.access` holds the owner token and the host rules."""
    from lipsync.server import create_app
    from lipsync.ui import gradio_import

    gradio_import.install()  # before Gradio's first import; see the module
    import gradio as gr

    from lipsync.ui.access import Access, StudioGuard
    from lipsync.ui.layout import CSS, build_ui, theme
    from lipsync.ui.studio import env_public_url

    # Gradio's upload cache in the private data folder, not the machine-wide /tmp/gradio; Gradio reads
    # the variable when the Blocks and its routes are made.
    os.environ["GRADIO_TEMP_DIR"] = str(studio.upload_dir)
    access = access or Access(bind_host=host, auth=bool(auth), public_urls=lambda: (studio.public_url, env_public_url()))
    app = create_app()
    blocks = build_ui(studio, access)
    # Gradio queues every event by default, one at a time per function; queue() is only needed for a size
    # limit, and it costs a rebuild of Gradio's routes at start-up.
    if studio.limits.queue_size is not None:
        blocks.queue(max_size=studio.limits.queue_size)
    app = gr.mount_gradio_app(
        app, blocks, path="/", auth=tuple(auth.split(":", 1)) if auth else None,
        allowed_paths=studio.allowed_paths(), max_file_size=studio.limits.max_file_size,
        # Run history would keep inputs (the API key field too) in the browser: off.
        run_history=False, footer_links=["settings"], ssr_mode=False, show_error=True,
        theme=theme(), css=CSS,
    )
    # Gradio checks that a file path sent by a browser is one it saved from an upload only once the Blocks
    # "has launched", which mount_gradio_app never sets: without this, a hand-made request could name any
    # file on disk as an input.
    blocks.has_launched = True
    app.add_middleware(StudioGuard, access=access)
    app.state.access = access
    return app, blocks


def _make_share_link(blocks, host: str, port: int) -> Optional[str]:
    """A gradio.live tunnel to this port, or None (offline, blocked): the studio works locally either way."""
    from gradio import networking

    from urllib.parse import urlparse, urlunparse

    try:
        address = networking.setup_tunnel(host, port, blocks.share_token, None, None)
        return urlunparse(("https",) + urlparse(address)[1:])
    except Exception as exc:  # noqa: BLE001 - any failure means "no link", said plainly
        print(f"Could not create a share link ({exc.__class__.__name__}: {exc}). Are you offline? "
              "The studio still runs locally.", flush=True)
        return None


def _warm_up(delay: float = 3.0) -> None:
    """Import the render stack in the background so the first job does not wait for it; after a pause,
    so that it does not slow the first page load."""
    time.sleep(delay)
    try:
        import lipsync.engines.builtin  # noqa: F401
        import lipsync.pipeline  # noqa: F401
        from lipsync.face import landmarks

        landmarks._import_mediapipe()
    except Exception:  # noqa: BLE001 - only a head start; the job imports them again and reports errors
        pass


def _studio_server(config, blocks):
    """uvicorn's server, made to end Gradio's open event streams first on Ctrl+C, so that browser tabs
    left open don't hold the shutdown until the graceful timeout."""
    import uvicorn

    class StudioServer(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            if blocks._queue is not None:
                blocks._queue.close()
            for route in config.app.routes:
                stop = getattr(getattr(route, "app", None), "stop_event", None)
                if stop is not None:
                    stop.set()
            super().handle_exit(sig, frame)

    return StudioServer(config)


def main(argv: Optional[Sequence[str]] = None) -> int:
    started = time.perf_counter()
    args = parse_args(argv)
    import uvicorn

    from lipsync.ui.studio import Studio, on_space

    studio = Studio()
    for warning in _startup_warnings(args.host, args.share, args.auth):
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    app, blocks = build_app(studio, args.auth, host=args.host)
    access = app.state.access
    # proxy_headers off: X-Forwarded-For must not let a client pick the address the login brake counts.
    server = _studio_server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning",
                                           timeout_graceful_shutdown=5, proxy_headers=False), blocks)

    def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            time.sleep(0.02)
        shown = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
        url = f"http://{shown}:{args.port}/"
        where = f", listening on {args.host}" if shown != args.host else ""
        print(f"Lipsync Studio is ready at {access.owner_url(url)} ({time.perf_counter() - started:.1f} s{where})",
              flush=True)
        if not args.auth:
            print("  Open that address to use the studio as its owner (API keys, presets, every job); anyone "
                  "who opens the plain address is a visitor who sees only their own jobs.", flush=True)
        print(f"REST API: {url}api/v1 (docs at {url}api/docs; create a key with `lipsync keys create`)",
              flush=True)
        if args.share and on_space():
            print("--share is not needed on a Space: it already has a public address", flush=True)
        elif args.share:
            link = _make_share_link(blocks, shown, args.port)
            if link:
                studio.share_url = link
                print(f"Public share link: {link} (temporary; anyone with it can use the studio)", flush=True)
        _warm_up()

    threading.Thread(target=announce, name="announce", daemon=True).start()
    server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
