"""Broker and Celery settings, read once from the environment (server) or the command line (worker)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

TASK_NAME = "lipsync.render"
QUEUE_PREFIX = "lipsync."
WORKER_PATH = "/api/v1/worker"  # the endpoints workers call on the server (routes.py)


def queue_for(engine: Optional[str]) -> str:
    """Jobs are routed by engine: a worker consumes the queues of the engines it runs."""
    return f"{QUEUE_PREFIX}{engine or 'builtin'}"


def _seconds(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    try:
        return float(value) if value else default
    except ValueError:
        raise ValueError(f"{name}: {value!r} is not a number of seconds") from None


@dataclass(frozen=True)
class BrokerSettings:
    url: Optional[str] = None  # redis://host:6379/0; None: the embedded thread queue
    # A task taken by a worker that then vanishes (SIGKILL, power cut) goes back to the queue this long
    # after it was taken. It must exceed the longest render: a job still rendering after it is delivered
    # to a second worker as well (both render; the first result is kept).
    visibility_timeout: float = 3600.0
    # The server's URL as workers reach it; default: LIPSYNC_PUBLIC_URL, else the URL the job was submitted to.
    server_url: Optional[str] = None
    check_timeout: float = 2.0  # seconds: a submission waits this long at most to learn the broker is down
    watch_interval: float = 2.0  # seconds between the server's broker checks (re-enqueue after data loss)
    max_attempts: int = 3  # deliveries of one job (worker lost mid-render) before it fails with the reason

    @classmethod
    def from_env(cls) -> "BrokerSettings":
        """LIPSYNC_BROKER_URL, LIPSYNC_VISIBILITY_TIMEOUT (seconds), LIPSYNC_SERVER_URL."""
        return cls(url=os.environ.get("LIPSYNC_BROKER_URL", "").strip() or None,
                   visibility_timeout=_seconds("LIPSYNC_VISIBILITY_TIMEOUT", 3600.0),
                   server_url=os.environ.get("LIPSYNC_SERVER_URL", "").strip().rstrip("/") or None)


def celery_config(settings: BrokerSettings) -> dict:
    """Celery's settings. Late acknowledgement plus reject-on-worker-lost: a task is removed from the
    broker only when its job is finished, so a worker killed mid-job leaves it to another. One task
    prefetched per process: a long render never holds a second job hostage."""
    vt = settings.visibility_timeout
    return {
        "broker_url": settings.url,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_acks_on_failure_or_timeout": True,
        "task_default_queue": queue_for("builtin"),
        "task_serializer": "json", "accept_content": ["json"], "result_backend": None, "task_ignore_result": True,
        "broker_connection_retry_on_startup": True,
        # A render keeps going when the broker goes away: its result goes to the server over HTTP.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "worker_hijack_root_logger": False,
        "broker_transport_options": {
            "visibility_timeout": vt,
            # Look for abandoned tasks about ten times per visibility timeout (at least every minute).
            "unacked_restore_interval": max(1, min(60, int(vt / 10))), "unacked_restore_throttle": 1,
            "socket_connect_timeout": settings.check_timeout, "socket_timeout": 30,
        },
    }
