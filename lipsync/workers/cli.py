"""`lipsync worker` (render jobs from a broker) and `lipsync workers` (who is rendering, what is waiting)."""

from __future__ import annotations

import argparse
import json
import os
import shutil

from ..errors import InputError


def add_parser(sub) -> None:
    worker = sub.add_parser("worker", help="render REST API jobs from a Celery broker (LIPSYNC_BROKER_URL on the server)")
    worker.add_argument("--broker", default=os.environ.get("LIPSYNC_BROKER_URL"),
                        help="redis://host:6379/0 (default: LIPSYNC_BROKER_URL)")
    worker.add_argument("--concurrency", type=int, default=1, help="jobs at once (default 1: a render uses every core)")
    worker.add_argument("--engine", default="builtin", help="engines this worker runs, comma-separated (default builtin)")
    worker.add_argument("--name", help="worker name (default lipsync<pid>@<host>)")
    worker.add_argument("--loglevel", default="INFO")
    worker.set_defaults(handler=cmd_worker)
    workers = sub.add_parser("workers", help="list the Celery workers and the queue lengths")
    workers.add_argument("--broker", default=os.environ.get("LIPSYNC_BROKER_URL"))
    workers.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for workers to answer")
    workers.add_argument("--json", action="store_true")
    workers.set_defaults(handler=cmd_workers)


def _settings(broker):
    from .settings import BrokerSettings

    if not broker:
        raise InputError("broker", "give --broker redis://host:6379/0 or set LIPSYNC_BROKER_URL")
    return BrokerSettings(url=broker, visibility_timeout=BrokerSettings.from_env().visibility_timeout)


def _engines(text: str) -> list[str]:
    from ..engines import get_engine

    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        get_engine(name)  # an unknown name fails here, with the list of known ones
    return names or ["builtin"]


def cmd_worker(args: argparse.Namespace) -> int:
    from .celery_app import create_celery
    from .settings import queue_for

    settings = _settings(args.broker)
    engines = _engines(args.engine)
    if args.concurrency < 1:
        raise InputError("concurrency", "must be 1 or more")
    app = create_celery(settings)
    _register_info(engines)
    app.worker_main(["worker", f"--concurrency={args.concurrency}", "--pool=prefork", f"--loglevel={args.loglevel}",
                     "-Q", ",".join(queue_for(e) for e in engines), "-n", args.name or f"lipsync{os.getpid()}@%h",
                     "--without-gossip", "--without-mingle"])
    return 0


def _register_info(engines: list[str]) -> None:
    """`lipsync_info`, a remote-control command each worker answers: what it can run."""
    from celery.worker.control import inspect_command

    info = {"engines": engines, "gpu": os.path.exists("/dev/nvidia0") or shutil.which("nvidia-smi") is not None}

    @inspect_command()
    def lipsync_info(state):
        return info


def _waiting(conn, channel, name: str) -> int:
    try:
        return channel.queue_declare(name, passive=True).message_count
    except conn.channel_errors:  # a queue nothing was ever sent to does not exist yet
        return 0


def cmd_workers(args: argparse.Namespace) -> int:
    from .celery_app import create_celery
    from .settings import queue_for

    app = create_celery(_settings(args.broker))
    try:
        inspect = app.control.inspect(timeout=args.timeout)
        stats = inspect.stats() or {}
        active = inspect.active() or {}
        infos = {}
        for reply in app.control.broadcast("lipsync_info", reply=True, timeout=args.timeout) or []:
            infos.update(reply)
        workers = [{"name": name, "engines": infos.get(name, {}).get("engines"), "gpu": infos.get(name, {}).get("gpu"),
                    "concurrency": (stats[name].get("pool") or {}).get("max-concurrency"),
                    "jobs": [task["args"][0] for task in active.get(name, []) if task.get("args")]}
                   for name in sorted(stats)]
        names = sorted({queue_for(e) for w in workers for e in (w["engines"] or [])} | {queue_for("builtin")})
        with app.connection_for_read() as conn:
            channel = conn.default_channel
            queues = {name: _waiting(conn, channel, name) for name in names}
    except OSError as exc:
        raise InputError("broker", f"cannot reach {args.broker.split('@')[-1]} ({exc})") from None
    finally:
        app.close()
    if args.json:
        print(json.dumps({"workers": workers, "queues": queues}, indent=2))
        return 0
    if not workers:
        print("No workers answered. Start one with: lipsync worker --broker URL")
    for w in workers:
        busy = f"rendering {', '.join(w['jobs'])}" if w["jobs"] else "idle"
        print(f"{w['name']}  engines: {', '.join(w['engines'] or ['?'])}  concurrency: {w['concurrency']}  "
              f"GPU: {'yes' if w['gpu'] else 'no'}  {busy}")
    for name, count in queues.items():
        print(f"queue {name}: {count} waiting")
    return 0
