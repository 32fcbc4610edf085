"""The hosted-API client against a fake of the hosted API on loopback (written here, after its contract)."""

from __future__ import annotations

import json
import re
import threading
import uuid
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from lipsync import ImageRequest
from lipsync.cli import main as cli_main
from lipsync.errors import InputError
from lipsync.remote import HostedClient, RemoteError, api_base, hosted_form_state, mirror_available
from test_server import Receiver, serve_http

KEY = "sk_a1b2c3d4_" + "K" * 32
VIDEO = b"\x00\x00\x00\x18ftypmp42 fake mp4 bytes"


class FakeHosted:
    """POST /api/v1/<model> → {id, status}; GET /api/v1/jobs/<id> answers `processing` `polls` times, then
    the final object (failed when the prompt is "fail") and POSTs it to the webhook. `script` queues
    answers (status, headers, body) to give before the normal ones, per method."""

    def __init__(self, polls: int = 2):
        self.polls = polls
        self.jobs: dict[str, dict] = {}
        self.seen: list[tuple[str, str, dict, bytes]] = []
        self.script: dict[str, list] = {"POST": [], "GET": []}
        self.cdn = ""  # base URL of the server that holds outputs
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                fake.handle(self, "POST")

            def do_GET(self):
                fake.handle(self, "GET")

            def log_message(self, *args):
                pass

        self.handler = Handler

    def handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        body = h.rfile.read(int(h.headers.get("content-length", 0)))
        self.seen.append((method, h.path, {k.lower(): v for k, v in h.headers.items()}, body))
        if self.script[method]:
            return self.reply(h, *self.script[method].pop(0))
        if h.headers.get("authorization") != f"Bearer {KEY}":
            return self.reply(h, 401, {}, {"error": "Invalid API key"})
        model = h.path.removeprefix("/api/v1/")
        if method == "POST" and model in ("lipsync-video", "lipsync-image", "lipsync-image-multi"):
            request = json.loads(body)
            job_id = str(uuid.uuid4())
            self.jobs[job_id] = {"model": model, "request": request, "polls": 0}
            return self.reply(h, 200, {}, {"id": job_id, "status": "processing"})
        match = re.fullmatch(r"/api/v1/jobs/([\w-]+)", h.path)
        if method == "GET" and match and match.group(1) in self.jobs:
            return self.reply(h, 200, {}, self.poll(match.group(1)))
        self.reply(h, 404, {}, {"error": "Not found"})

    def poll(self, job_id: str) -> dict:
        job = self.jobs[job_id]
        job["polls"] += 1
        obj = {"id": job_id, "model": job["model"], "status": "processing", "output": None, "error": None,
               "executionTime": None, "timings": {}}
        if job["polls"] <= self.polls:
            return obj
        if job["request"]["formState"].get("prompt") == "fail":
            obj.update(status="failed", error="No face detected in image")
        else:
            obj.update(status="completed", output=f"{self.cdn}/out/{job_id}.mp4", executionTime=41000,
                       timings={"inference": 40000})
        if job["request"].get("webhook") and not job.get("notified"):
            job["notified"] = True
            threading.Thread(target=httpx.post, args=(job["request"]["webhook"],), kwargs={"json": obj}).start()
        return obj

    @staticmethod
    def reply(h: BaseHTTPRequestHandler, status: int, headers: dict, body) -> None:
        raw = json.dumps(body).encode() if not isinstance(body, bytes) else body
        h.send_response(status)
        for name, value in {"content-type": "application/json", **headers}.items():
            h.send_header(name, value)
        h.send_header("content-length", str(len(raw)))
        h.end_headers()
        h.wfile.write(raw)


class Cdn(BaseHTTPRequestHandler):
    """Holds outputs on another origin; remembers the headers it was sent."""

    headers_seen: list = []

    def do_GET(self):
        Cdn.headers_seen.append(dict(self.headers))
        self.send_response(200)
        self.send_header("content-type", "video/mp4")
        self.send_header("content-length", str(len(VIDEO)))
        self.end_headers()
        self.wfile.write(VIDEO)

    def log_message(self, *args):
        pass


@contextmanager
def hosted(polls: int = 2) -> Iterator[tuple[str, FakeHosted]]:
    fake = FakeHosted(polls)
    with serve_http(fake.handler) as (url, _), serve_http(Cdn) as (cdn, _):
        fake.cdn = cdn
        yield url, fake


@pytest.fixture
def fake():
    with hosted() as (url, fake):
        yield url, fake


@pytest.fixture
def no_sleep(monkeypatch) -> list[float]:
    """The client's clock, made fake: sleeps are recorded and move its time forward at once."""
    import time as real_time
    from types import SimpleNamespace

    slept: list[float] = []
    clock = [0.0]

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    fake_time = SimpleNamespace(sleep=sleep, monotonic=lambda: clock[0], time=real_time.time)
    monkeypatch.setattr("lipsync.remote.client.time", fake_time)
    return slept


IMAGE_STATE = {"image": "https://cdn.example/a.png", "audio": "https://cdn.example/a.wav", "resolution": "720p"}


def test_submit_poll_download(fake, tmp_path, no_sleep):
    url, server = fake
    client = HostedClient(f"{url}/api/v1", KEY)
    submitted = client.submit("lipsync-image", {**IMAGE_STATE, "seed": None})
    assert submitted["status"] == "processing"
    method, path, headers, body = server.seen[-1]
    assert (method, path) == ("POST", "/api/v1/lipsync-image")
    assert json.loads(body) == {"formState": IMAGE_STATE}  # None values are left out
    assert headers["authorization"] == f"Bearer {KEY}"

    stages = []
    job = client.wait(submitted["id"], poll_interval=7, progress=lambda f, s: stages.append((f, s)))
    assert job["status"] == "completed" and job["executionTime"] == 41000
    assert [f for f, _ in stages] == [0.0, 0.0, 1.0] and stages[0][1].startswith("processing")
    assert no_sleep == [7, 7]

    out = client.download(job["output"], tmp_path / "sub" / "hosted.mp4")
    assert out.read_bytes() == VIDEO
    # The key went to the API, never to the host of the output URL.
    assert "authorization" not in {k.lower() for k in Cdn.headers_seen[-1]}


def test_webhook_is_sent_with_the_job_and_receives_the_result(fake):
    url, server = fake
    rec = Receiver()
    with serve_http(rec.handler) as (hook, _):
        client = HostedClient(url, KEY)  # a bare origin gets /api/v1 appended
        job_id = client.submit("lipsync-video", {"video": "https://x.example/v.mp4", "audio": "https://x.example/a.wav"},
                               webhook=f"{hook}/done")["id"]
        assert json.loads(server.seen[-1][3])["webhook"] == f"{hook}/done"
        job = client.wait(job_id, poll_interval=0.01)
        _, body = rec.next(10)
    assert json.loads(body) == job


def test_retries_connection_errors_5xx_and_429_with_retry_after(fake, no_sleep):
    url, server = fake
    server.script["POST"] = [(503, {}, {"error": "busy"}), (429, {"Retry-After": "3"}, {"error": "slow down"})]
    server.script["GET"] = [(502, {}, b"<html>bad gateway</html>"), (500, {}, {"error": "oops"})]
    client = HostedClient(url, KEY, backoff=0.5)
    job_id = client.submit("lipsync-image", IMAGE_STATE)["id"]
    assert [m for m, *_ in server.seen].count("POST") == 3
    assert no_sleep == [0.5, 3.0]  # exponential backoff, then the server's Retry-After
    assert client.get(job_id)["status"] == "processing"
    assert no_sleep[2:] == [0.5, 1.0]


def test_a_post_that_may_have_created_a_job_is_not_repeated(fake, no_sleep):
    url, server = fake
    server.script["POST"] = [(500, {}, {"error": "database timeout"})]
    with pytest.raises(RemoteError, match="HTTP 500: database timeout") as info:
        HostedClient(url, KEY).submit("lipsync-image", IMAGE_STATE)
    assert info.value.status == 500 and len(server.seen) == 1 and no_sleep == []


def test_unreachable_server_gives_up_after_the_retries(no_sleep):
    from test_server import free_port

    client = HostedClient(f"http://127.0.0.1:{free_port()}", KEY, retries=2)
    with pytest.raises(RemoteError, match="cannot reach"):
        client.get("abc")
    assert len(no_sleep) == 2


def test_401_reports_the_server_message_and_never_the_key(fake):
    url, _ = fake
    bad = "sk_ffffffff_" + "Z" * 32
    client = HostedClient(url, bad)
    with pytest.raises(RemoteError) as info:
        client.submit("lipsync-image", IMAGE_STATE)
    assert info.value.status == 401 and str(info.value).startswith("HTTP 401: Invalid API key")
    assert bad not in str(info.value) and bad not in repr(client)
    with pytest.raises(RemoteError, match="no API key"):
        HostedClient(url, "").get("x")


def test_failed_job_raises_with_its_error(fake):
    url, _ = fake
    client = HostedClient(url, KEY)
    job_id = client.submit("lipsync-image", {**IMAGE_STATE, "prompt": "fail"})["id"]
    with pytest.raises(RemoteError, match="failed: No face detected in image") as info:
        client.wait(job_id, poll_interval=0.01)
    assert info.value.job["status"] == "failed"


def test_wait_times_out_and_unknown_job_is_404(no_sleep):
    with hosted(polls=100) as (url, _):
        client = HostedClient(url, KEY)
        job_id = client.submit("lipsync-image", IMAGE_STATE)["id"]
        with pytest.raises(RemoteError, match="still processing after 20 s"):
            client.wait(job_id, poll_interval=5, timeout=20)
        with pytest.raises(RemoteError, match="HTTP 404"):
            client.get("nope")


def test_api_base_and_defaults(monkeypatch):
    monkeypatch.delenv("LIPSYNC_API_URL", raising=False)
    assert api_base() == "https://lipsync.studio/api/v1"
    assert api_base("http://127.0.0.1:7860/") == "http://127.0.0.1:7860/api/v1"
    assert api_base("https://h.example/api/v1/") == "https://h.example/api/v1"
    monkeypatch.setenv("LIPSYNC_API_URL", "http://box:9000")
    monkeypatch.setenv("LIPSYNC_API_KEY", KEY)
    client = HostedClient()
    assert client.base_url == "http://box:9000/api/v1" and not client.is_hosted
    assert KEY not in repr(client)
    with pytest.raises(InputError, match="api_url"):
        api_base("ftp://x")
    with pytest.raises(InputError, match="model"):
        client.submit("lipsync-audio", {})


def test_hosted_form_state_needs_public_urls(monkeypatch, tmp_path, astronaut_png):
    monkeypatch.delenv("LIPSYNC_PUBLIC_URL", raising=False)
    request = ImageRequest(image="https://x.example/a.png", audio="https://x.example/a.wav", transcript="hi",
                           face_index=0, seed=4)
    assert hosted_form_state(request) == {"image": "https://x.example/a.png", "audio": "https://x.example/a.wav",
                                          "resolution": "480p", "seed": 4}
    local = ImageRequest(image=str(astronaut_png), audio="https://x.example/a.wav")
    assert mirror_available(request) is None
    assert mirror_available(local).startswith("image: the hosted API needs a public URL")
    with pytest.raises(InputError, match="^image: the hosted API needs a public URL"):
        hosted_form_state(local)
    state = hosted_form_state(local, public_base="https://abc.gradio.live/")
    assert re.fullmatch(r"https://abc\.gradio\.live/api/v1/media/[\w-]+/astronaut\.png", state["image"])
    monkeypatch.setenv("LIPSYNC_PUBLIC_URL", "https://studio.example")
    assert mirror_available(local) is None
    assert hosted_form_state(local)["image"].startswith("https://studio.example/api/v1/media/")


def test_remote_cli_waits_downloads_and_prints_the_job(fake, tmp_path, capsys):
    url, _ = fake
    out = tmp_path / "r.mp4"
    code = cli_main(["remote", "image", "--image", IMAGE_STATE["image"], "--audio", IMAGE_STATE["audio"],
                     "--api-url", url, "--api-key", KEY, "--out", str(out), "--json", "--poll-interval", "0.01"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert json.loads(captured.out)["status"] == "completed" and out.read_bytes() == VIDEO
    assert KEY not in captured.out + captured.err


def test_remote_cli_errors_are_one_line(fake, tmp_path, capsys, monkeypatch, astronaut_png):
    url, _ = fake
    monkeypatch.delenv("LIPSYNC_PUBLIC_URL", raising=False)
    monkeypatch.delenv("LIPSYNC_API_URL", raising=False)
    # Local files cannot go to the hosted API without a public URL: refused before anything is sent.
    assert cli_main(["remote", "image", "--image", str(astronaut_png), "--audio", "https://x.example/a.wav",
                     "--api-key", KEY]) == 1
    assert capsys.readouterr().err.startswith("error: image: the hosted API needs a public URL")
    assert cli_main(["remote", "dialogue", "--image", "https://x.example/two.png", "--left-audio",
                     "https://x.example/l.wav", "--right-audio", "https://x.example/r.wav", "--prompt", "fail",
                     "--api-url", url, "--api-key", KEY, "--poll-interval", "0.01"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("failed: No face detected in image") and err[-1].startswith("error: job ")
