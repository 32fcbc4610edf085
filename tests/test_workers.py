"""Celery workers behind the REST API, for real: a redis-server on loopback, the API server with
LIPSYNC_BROKER_URL, and two `lipsync worker` processes. Faults: a worker SIGKILLed mid-job, a job with
bad input, the broker stopped (and restarted empty) mid-queue."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import numpy as np
import pytest

from conftest import make_speech, save_rgb
from lipsync.cli import main as cli_main
from lipsync.server import ServerSettings, create_app
from lipsync.server.db import server_secret
from lipsync.server.keys import create_key
from lipsync.workers.dispatch import job_token
from lipsync.workers.settings import BrokerSettings
from test_server import Receiver, free_port, serve_app, serve_http, static_files, wait_for

REDIS = shutil.which("redis-server")
if REDIS is None and not os.environ.get("CI"):
    pytest.skip("redis-server is not installed (make sysdeps installs it)", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
# Short, so that a killed worker's task comes back within seconds; longer than any render here (a cold
# worker imports the render stack first), else a slow render would also be handed to the other worker.
VISIBILITY = 20.0


class RedisServer:
    """redis-server on a loopback port, without persistence: a restart empties it, as a crash would."""

    def __init__(self, folder: Path, port: int):
        self.folder, self.port, self.proc = folder, port, None
        self.url = f"redis://127.0.0.1:{port}/0"

    def start(self) -> None:
        assert REDIS, "redis-server is missing: CI installs it with `make sysdeps`"
        self.proc = subprocess.Popen([REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.folder)],
                                     stdout=(self.folder / "redis.log").open("ab"), stderr=subprocess.STDOUT)
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                assert self.proc.poll() is None and time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


class Workers:
    """`lipsync worker` processes, each in its own process group (a SIGKILL takes the whole worker)."""

    def __init__(self, folder: Path, broker: str):
        self.folder, self.broker, self.procs = folder, broker, {}

    def start(self, name: str) -> None:
        home = self.folder / name
        home.mkdir(exist_ok=True)
        env = {**os.environ, "LIPSYNC_HOME": str(home), "LIPSYNC_VISIBILITY_TIMEOUT": str(VISIBILITY),
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), "HF_HUB_OFFLINE": "1"}
        log = (self.folder / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "lipsync.cli", "worker", "--broker", self.broker, "--name", f"{name}@test"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, names: list[str], timeout: float = 60) -> None:
        from lipsync.workers.celery_app import create_celery

        app = create_celery(BrokerSettings(url=self.broker))
        deadline = time.monotonic() + timeout
        try:
            while True:
                answered = app.control.inspect(timeout=0.5).ping() or {}
                if all(f"{name}@test" in answered for name in names):
                    return
                for name in names:
                    assert self.procs[name].poll() is None, self.log(name)
                assert time.monotonic() < deadline, f"workers did not start: {answered}"
        finally:
            app.close()

    def kill(self, name: str) -> None:
        os.killpg(self.procs[name].pid, signal.SIGKILL)
        self.procs.pop(name).wait(10)

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")[-4000:]

    def stop_all(self) -> None:
        for proc in self.procs.values():
            os.killpg(proc.pid, signal.SIGTERM)
        for name, proc in list(self.procs.items()):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, astronaut_png):
    folder = tmp_path_factory.mktemp("cluster")
    home = folder / "server"
    served = folder / "served"
    served.mkdir()
    make_speech(served / "hi.wav", "Bob made a map.")
    (served / "astronaut.png").write_bytes(astronaut_png.read_bytes())
    save_rgb(served / "blank.png", np.full((256, 256, 3), 128, np.uint8))
    redis_server = RedisServer(folder, free_port())
    redis_server.start()
    workers = Workers(folder, redis_server.url)
    receiver = Receiver()
    settings = ServerSettings(allow_private_urls=True, webhook_backoff=0.1)
    broker = BrokerSettings(url=redis_server.url, visibility_timeout=VISIBILITY, watch_interval=0.5)
    with ExitStack() as stack, pytest.MonkeyPatch.context() as mp:
        stack.callback(redis_server.stop)
        stack.callback(workers.stop_all)
        mp.setenv("LIPSYNC_HOME", str(home))
        key, _ = create_key("tests", home=home)
        media = stack.enter_context(static_files(served))
        hooks, _ = stack.enter_context(serve_http(receiver.handler))
        for name in ("w1", "w2"):
            workers.start(name)
        url = stack.enter_context(serve_app(create_app(settings, home=home, broker=broker)))
        client = stack.enter_context(httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=30))
        workers.wait_ready(["w1", "w2"])
        yield dict(url=url, client=client, home=home, media=media, hooks=hooks, receiver=receiver,
                   redis=redis_server, workers=workers)


def submit(cluster, image: str = "astronaut.png", webhook: str | None = None) -> str:
    media = cluster["media"]
    body = {"formState": {"image": f"{media}/{image}", "audio": f"{media}/hi.wav"}}
    if webhook:
        body["webhook"] = f"{cluster['hooks']}/{webhook}"
    response = cluster["client"].post(f"{cluster['url']}/api/v1/lipsync-image", json=body)
    assert response.status_code == 200, response.text
    return response.json()["id"]


def dispatch_row(home: Path, job_id: str) -> dict:
    with sqlite3.connect(home / "server.db") as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM celery_jobs WHERE job_id = ?", (job_id,)).fetchone()
    return dict(row) if row else {}


def stored_record(home: Path, job_id: str) -> dict:
    return json.loads((home / "jobs" / f"{job_id}.json").read_text())


def hooks_for(receiver: Receiver, job_id: str, settle: float = 1.5) -> list[dict]:
    """Every webhook received for `job_id`, after waiting `settle` s for any late duplicate."""
    time.sleep(settle)
    calls = []
    while not receiver.calls.empty():
        calls.append(json.loads(receiver.calls.get()[1]))
    return [call for call in calls if call["id"] == job_id]


def test_a_job_submitted_over_rest_completes_on_a_worker(cluster, capsys):
    job_id = submit(cluster)
    job = wait_for(cluster["client"], cluster["url"], job_id)
    assert job["status"] == "completed", job["error"]
    assert set(job["timings"]) == {"decode", "analysis", "render", "encode"}
    video = httpx.get(job["output"])  # served by the server: the worker uploaded it
    assert video.status_code == 200 and video.content[4:8] == b"ftyp"
    record = stored_record(cluster["home"], job_id)
    assert record["worker"] in ("w1@test", "w2@test") and record["status"] == "completed"
    assert dispatch_row(cluster["home"], job_id)["attempts"] == 1

    # A late second result for the finished job is answered "not kept" and changes nothing; a wrong
    # token opens nothing.
    row = dispatch_row(cluster["home"], job_id)
    late = {"task_id": row["task_id"], "worker": "w9@test", "record": {**record, "status": "failed", "error": "late"}}
    base = f"{cluster['url']}/api/v1/worker/jobs/{job_id}"
    token = job_token(server_secret(cluster["home"]), job_id)
    answer = httpx.post(f"{base}/result", json=late, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200 and answer.json() == {"accepted": False}
    assert httpx.post(f"{base}/result", json=late, headers={"Authorization": "Bearer " + "0" * 64}).status_code == 401
    assert stored_record(cluster["home"], job_id) == record

    assert cli_main(["workers", "--broker", cluster["redis"].url, "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert sorted(w["name"] for w in listing["workers"]) == ["w1@test", "w2@test"]
    assert all(w["engines"] == ["builtin"] and w["concurrency"] == 1 for w in listing["workers"])
    assert listing["queues"] == {"lipsync.builtin": 0}


def test_a_worker_killed_mid_job_leaves_it_to_the_other(cluster):
    home, workers = cluster["home"], cluster["workers"]
    job_id = submit(cluster, webhook="killed")
    deadline = time.monotonic() + 30
    while not dispatch_row(home, job_id).get("worker"):
        assert time.monotonic() < deadline, "no worker claimed the job"
        time.sleep(0.05)
    victim = dispatch_row(home, job_id)["worker"].split("@")[0]
    workers.kill(victim)
    assert cluster["client"].get(f"{cluster['url']}/api/v1/jobs/{job_id}").json()["status"] == "processing"

    job = wait_for(cluster["client"], cluster["url"], job_id, timeout=VISIBILITY + 60)
    assert job["status"] == "completed", job["error"]
    record = stored_record(home, job_id)
    assert record["worker"] != f"{victim}@test"
    assert dispatch_row(home, job_id)["attempts"] == 2
    assert [p.name for p in (home / "outputs").iterdir() if job_id in p.name] == [f"{job_id}.mp4"]
    hooks = hooks_for(cluster["receiver"], job_id)
    assert len(hooks) == 1 and hooks[0]["status"] == "completed"
    workers.start(victim)  # two workers again for the next tests
    workers.wait_ready([victim])


def test_bad_input_fails_once_with_its_reason(cluster):
    job_id = submit(cluster, image="blank.png", webhook="bad")
    job = wait_for(cluster["client"], cluster["url"], job_id)
    assert job["status"] == "failed" and job["output"] is None
    assert job["error"].startswith("image: no face found"), job["error"]
    assert dispatch_row(cluster["home"], job_id)["attempts"] == 1  # not retried
    hooks = hooks_for(cluster["receiver"], job_id)
    assert len(hooks) == 1 and hooks[0]["status"] == "failed"


def test_broker_down_refuses_new_jobs_and_restarted_empty_loses_none(cluster):
    client, url, home, redis_server = cluster["client"], cluster["url"], cluster["home"], cluster["redis"]
    # Three jobs for two workers: the third waits in the broker's queue...
    jobs = [submit(cluster) for _ in range(3)]
    deadline = time.monotonic() + 30
    while sum(bool(dispatch_row(home, j).get("worker")) for j in jobs) < 2:
        assert time.monotonic() < deadline, "the workers did not take two jobs"
        time.sleep(0.05)
    waiting = next(j for j in jobs if not dispatch_row(home, j).get("worker"))
    published = dispatch_row(home, waiting)["task_id"]
    # ...when the broker stops, and comes back with none of its data.
    redis_server.stop()
    refused = client.post(f"{url}/api/v1/lipsync-image", json={"formState": {
        "image": f"{cluster['media']}/astronaut.png", "audio": f"{cluster['media']}/hi.wav"}})
    assert refused.status_code == 503 and "broker" in refused.json()["error"]
    assert refused.headers["retry-after"]
    assert client.get(f"{url}/api/v1/jobs/{waiting}").json()["status"] == "processing"
    redis_server.start()

    done = [wait_for(client, url, j, timeout=120) for j in jobs]
    assert [job["status"] for job in done] == ["completed"] * 3, [job["error"] for job in done]
    # The waiting job was published again (a new task id) and rendered once.
    assert dispatch_row(home, waiting)["task_id"] != published
    assert dispatch_row(home, waiting)["attempts"] == 1
    assert submit(cluster)  # and new submissions are taken again
