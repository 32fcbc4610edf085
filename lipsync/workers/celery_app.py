"""The Celery app: made from settings (no module-level app), with the one render task registered.

The server only publishes (`send_task` by name); the task body runs in `lipsync worker` processes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .settings import TASK_NAME, BrokerSettings, celery_config

if TYPE_CHECKING:
    from celery import Celery


def create_celery(settings: BrokerSettings) -> "Celery":
    from celery import Celery

    app = Celery("lipsync", set_as_current=False)
    app.conf.update(celery_config(settings))

    @app.task(name=TASK_NAME, bind=True)
    def render(task, job_id: str, server_url: str, token: str) -> str:
        from .tasks import run_task

        return run_task(task, job_id, server_url, token)

    return app
