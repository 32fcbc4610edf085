"""Rendering on many machines: Celery workers behind the same REST API.

The server (`LIPSYNC_BROKER_URL` set) publishes one Celery task per job: the job id, the server's URL and a
token that works for that job alone. A worker (`lipsync worker --broker URL`) claims the job from the
server, downloads its inputs, renders it, uploads the output and the record back. Workers hold no state;
the server keeps the one job record in SQLite and sends the webhook once.

    settings.py   broker and Celery settings (acks late, redelivery, visibility timeout)
    celery_app.py the Celery app and the task, routed by engine to queue `lipsync.<engine>`
    tasks.py      what a worker does with one task (claim, fetch, render, upload)
    dispatch.py   the server side: publishing, the broker watch, accepting results once
    routes.py     the HTTP endpoints workers call, under /api/v1/worker
    cli.py        `lipsync worker` and `lipsync workers`
"""
