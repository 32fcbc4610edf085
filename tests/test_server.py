"""The local REST API over real HTTP on loopback: the hosted contract, keys, webhooks, SSRF, restarts."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import av
import httpx
import numpy as np
import pytest

from conftest import make_speech, run_ffmpeg, save_rgb
from lipsync.cli import main as cli_main
from lipsync.errors import InputError
from lipsync.server import ServerSettings, create_app, startup_warnings
from lipsync.server.keys import KEY_RE, create_key, list_keys, revoke_key, verify_key
from lipsync.server.links import share_file
from lipsync.server.store import INTERRUPTED
from lipsync.server.webhooks import SIGNATURE_HEADER, deliver, signature_header, verify_signature

JOB_KEYS = {"id", "model", "status", "output", "error", "executionTime", "timings"}
MB = 1 << 20


# -- helpers (test_remote.py uses them too) -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_app(app) -> Iterator[str]:
    """Run an ASGI app with uvicorn in a thread (lifespan included); yields its base URL."""
    import uvicorn

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@contextmanager
def serve_http(handler) -> Iterator[tuple[str, ThreadingHTTPServer]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server
    finally:
        server.shutdown()
        server.server_close()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextmanager
def static_files(folder: Path) -> Iterator[str]:
    """Serve `folder` over HTTP on loopback (media URLs for jobs)."""
    with serve_http(partial(_Quiet, directory=str(folder))) as (url, _):
        yield url


class Receiver:
    """A webhook receiver on loopback: records every POST, answers with the scripted status codes."""

    def __init__(self, statuses: tuple[int, ...] = ()):
        self.calls: queue.Queue = queue.Queue()
        self.statuses = list(statuses)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.calls.put((dict(self.headers), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.handler = Handler

    def next(self, timeout: float = 60) -> tuple[dict, bytes]:
        return self.calls.get(timeout=timeout)


def wait_for(client: httpx.Client, url: str, job_id: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"{url}/api/v1/jobs/{job_id}").json()
        if job["status"] != "processing" or time.monotonic() > deadline:
            return job
        time.sleep(0.2)


def video_seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return frames / float(stream.average_rate)


# -- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def media(tmp_path_factory, astronaut_png, two_people_png, media_dir) -> Path:
    """Short media to fetch by URL: ~1 s speech clips, photos, a 1 s video, a blank image, a big file."""
    folder = tmp_path_factory.mktemp("served")
    make_speech(folder / "hi.wav", "Bob made a map.")
    make_speech(folder / "yes.wav", "Yes, maybe.", voice="en-us+f3")
    (folder / "astronaut.png").write_bytes(astronaut_png.read_bytes())
    (folder / "two.png").write_bytes(two_people_png.read_bytes())
    run_ffmpeg("-loop", "1", "-i", str(astronaut_png), "-t", "1", "-r", "25", "-vf", "scale=320:320,format=yuv420p",
               "-c:v", "libx264", str(folder / "clip.mp4"))
    save_rgb(folder / "blank.png", np.full((256, 256, 3), 128, np.uint8))
    (folder / "big.wav").write_bytes(os.urandom(3 * MB))
    return folder


@pytest.fixture(scope="module")
def media_url(media) -> Iterator[str]:
    with static_files(media) as url:
        yield url


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[str, Receiver]]:
    rec = Receiver()
    with serve_http(rec.handler) as (url, _):
        yield url, rec


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """One server for the module, trusting loopback URLs (as LIPSYNC_ALLOW_PRIVATE_URLS=1 does)."""
    home = tmp_path_factory.mktemp("server_home")
    # Many tests here send wrong keys on purpose: a high failure allowance keeps the throttle out of their way.
    settings = ServerSettings(allow_private_urls=True, max_media_bytes=2 * MB, webhook_backoff=0.1, auth_failures=1000)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LIPSYNC_HOME", str(home))  # renders between tests write here, never to the user's folder
        key, info = create_key("tests", home=home)
        with serve_app(create_app(settings, home=home)) as url:
            with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
                yield dict(url=url, key=key, info=info, home=home, client=client)


# -- the hosted contract --------------------------------------------------------------------------------


def test_image_job_json_poll_download_and_signed_webhook(api, media_url, receiver):
    hook_url, rec = receiver
    client, url = api["client"], api["url"]
    body = {"webhook": f"{hook_url}/hooks/lipsync",
            "formState": {"image": f"{media_url}/astronaut.png", "audio": f"{media_url}/hi.wav", "seed": 3}}
    response = client.post(f"{url}/api/v1/lipsync-image", json=body)
    assert response.status_code == 200, response.text
    submitted = response.json()
    assert submitted == {"id": submitted["id"], "status": "processing"}
    assert re.fullmatch(r"[0-9a-f-]{36}", submitted["id"])

    job = wait_for(client, url, submitted["id"])
    assert job["status"] == "completed", job["error"]
    assert set(job) == JOB_KEYS and job["model"] == "lipsync-image" and job["error"] is None
    assert job["executionTime"] > 0 and set(job["timings"]) == {"decode", "analysis", "render", "encode"}
    assert re.fullmatch(rf"{url}/api/v1/files/{job['id']}\.mp4\?exp=\d+&sig=[0-9a-f]{{32}}", job["output"])

    # The output URL works without the key, like the hosted one; a forged signature does not.
    video = httpx.get(job["output"])
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    out = api["home"] / "downloaded.mp4"
    out.write_bytes(video.content)
    assert 0.9 < video_seconds(out) < 1.6
    assert httpx.get(job["output"][:-4] + "0000").status_code == 401
    assert httpx.get(f"{url}/api/v1/files/{job['id']}.mp4").status_code == 401

    headers, raw = rec.next()
    hooked = json.loads(raw)
    # The same job; its link is signed when the webhook goes out, so its expiry may differ by a second.
    assert {**hooked, "output": None} == {**job, "output": None}
    assert hooked["output"].split("?")[0] == job["output"].split("?")[0] and httpx.get(hooked["output"]).status_code == 200
    assert verify_signature(api["info"].webhook_secret, raw, headers[SIGNATURE_HEADER])
    assert not verify_signature(api["info"].webhook_secret, raw + b" ", headers[SIGNATURE_HEADER])
    assert not verify_signature("whsec_other", raw, headers[SIGNATURE_HEADER])


def test_video_job_with_multipart_uploads(api, media):
    client, url = api["client"], api["url"]
    with (media / "clip.mp4").open("rb") as video, (media / "hi.wav").open("rb") as audio:
        response = client.post(f"{url}/api/v1/lipsync-video",
                               data={"formState": json.dumps({"seed": 1}), "resolution": "480p"},
                               files={"video": ("clip.mp4", video, "video/mp4"), "audio": ("hi.wav", audio)})
    assert response.status_code == 200, response.text
    job = wait_for(client, url, response.json()["id"])
    assert job["status"] == "completed", job["error"]
    assert job["model"] == "lipsync-video"
    # Uploads are removed once the job is done.
    assert not (api["home"] / "server" / "uploads" / job["id"]).exists()


def test_dialogue_job_through_the_hosted_client(api, media_url, tmp_path):
    """Code written for the hosted API works here with only the base URL changed."""
    from lipsync.remote import HostedClient

    with HostedClient(api["url"], api["key"]) as hosted:
        submitted = hosted.submit("lipsync-image-multi", {
            "image": f"{media_url}/two.png", "left_audio": f"{media_url}/hi.wav",
            "right_audio": f"{media_url}/yes.wav", "order": "left_right"})
        progress = []
        job = hosted.wait(submitted["id"], poll_interval=0.2, timeout=90, progress=lambda f, s: progress.append(f))
        out = hosted.download(job["output"], tmp_path / "dialogue.mp4")
    assert job["status"] == "completed" and progress[-1] == 1.0
    assert video_seconds(out) > 1.5  # left then right


def test_failed_jobs_carry_the_reason(api, media_url):
    client, url = api["client"], api["url"]
    cases = [({"image": f"{media_url}/blank.png", "audio": f"{media_url}/hi.wav"}, "image: no face found"),
             ({"image": f"{media_url}/astronaut.png", "audio": f"{media_url}/missing.wav"}, "audio: could not download URL: HTTP 404"),
             ({"image": f"{media_url}/astronaut.png", "audio": f"{media_url}/big.wav"}, "audio: download is larger than 2 MB")]
    ids = [client.post(f"{url}/api/v1/lipsync-image", json={"formState": state}).json()["id"] for state, _ in cases]
    for job_id, (_, message) in zip(ids, cases):
        job = wait_for(client, url, job_id)
        assert job["status"] == "failed" and job["output"] is None
        assert job["error"].startswith(message), job["error"]


@pytest.mark.parametrize("body, status, field", [
    ({}, 400, "formState"),
    ({"formState": []}, 400, "formState"),
    ({"formState": {"image": "https://example.com/a.png"}}, 400, "audio"),
    ({"formState": {"image": "/etc/hostname", "audio": "https://example.com/a.wav"}}, 400, "image"),
    ({"formState": {"image": "file:///etc/hostname", "audio": "https://example.com/a.wav"}}, 400, "image"),
    ({"formState": {"image": "http://127.0.0.1/a.png", "audio": "http://127.0.0.1/a.wav", "resolution": "1080p"}},
     400, "resolution"),
    ({"formState": {"image": "http://127.0.0.1/a.png", "audio": "http://127.0.0.1/a.wav", "colour": "red"}},
     400, "colour"),
    ({"webhook": "ftp://127.0.0.1/x", "formState": {"image": "http://127.0.0.1/a.png", "audio": "http://127.0.0.1/a.wav"}},
     400, "webhook"),
])
def test_validation_errors_name_the_field(api, body, status, field):
    response = api["client"].post(f"{api['url']}/api/v1/lipsync-image", json=body)
    assert response.status_code == status
    assert response.json()["field"] == field and response.json()["error"].startswith(f"{field}: ")


def test_unknown_job_route_and_bad_json(api):
    client, url = api["client"], api["url"]
    assert client.get(f"{url}/api/v1/jobs/0000").status_code == 404
    assert client.get(f"{url}/api/v1/jobs/0000").json()["error"] == "job 0000 not found"
    assert client.post(f"{url}/api/v1/lipsync-audio", json={"formState": {}}).status_code == 404
    bad = client.post(f"{url}/api/v1/lipsync-image", content=b"{nope", headers={"content-type": "application/json"})
    assert bad.status_code == 400 and bad.json()["field"] == "body"


def test_oversize_upload_is_refused(api, media):
    with (media / "big.wav").open("rb") as big, (media / "astronaut.png").open("rb") as image:
        response = api["client"].post(f"{api['url']}/api/v1/lipsync-image", files={"audio": big, "image": image})
    assert response.status_code == 413
    assert response.json() == {"error": "audio: upload is larger than 2 MB", "field": "audio"}
    assert not any((api["home"] / "server" / "uploads").glob("*/*"))


# -- keys -------------------------------------------------------------------------------------------------


def test_requests_need_a_valid_key(api):
    url = api["url"]
    for headers in ({}, {"Authorization": "Bearer sk_00000000_" + "a" * 32}, {"Authorization": "Basic abc"},
                    {"Authorization": f"Bearer {api['key']}x"}):
        response = httpx.post(f"{url}/api/v1/lipsync-image", json={"formState": {}}, headers=headers)
        assert response.status_code == 401 and "API key" in response.json()["error"]
        assert response.headers["www-authenticate"] == "Bearer"
        assert httpx.get(f"{url}/api/v1/jobs/x", headers=headers).status_code == 401

    key, info = create_key("short-lived", home=api["home"])
    headers = {"Authorization": f"Bearer {key}"}
    assert httpx.get(f"{url}/api/v1/jobs/x", headers=headers).status_code == 404
    assert revoke_key("short-lived", home=api["home"])
    assert httpx.get(f"{url}/api/v1/jobs/x", headers=headers).status_code == 401


def test_keys_store_only_hashes_and_revoke_by_key_prefix_or_name(lipsync_home):
    key, info = create_key("ci")
    assert KEY_RE.match(key) and info.prefix == key.rsplit("_", 1)[0] and info.name == "ci"
    assert verify_key(key) == info and verify_key(key[:-1] + ("b" if key[-1] == "a" else "a")) is None
    assert key not in repr(info) and info.webhook_secret not in repr(info)
    assert key.encode() not in (lipsync_home / "server.db").read_bytes()
    with pytest.raises(InputError, match="name: a key named 'ci' already exists"):
        create_key("ci")

    second, info2 = create_key()
    third, info3 = create_key("third")
    assert [k.id for k in list_keys()] == [info.id, info2.id, info3.id]
    assert revoke_key(info2.prefix) and verify_key(second) is None
    assert revoke_key(third) and verify_key(third) is None
    assert not revoke_key("third") and not revoke_key("nobody")
    assert verify_key(key) == info


def test_keys_cli(lipsync_home, capsys):
    assert cli_main(["keys", "create", "--name", "build bot"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    key = lines[-1]
    assert KEY_RE.match(key) and verify_key(key).name == "build bot"
    assert cli_main(["keys", "list"]) == 0
    listing = capsys.readouterr().out
    assert key.rsplit("_", 1)[0] in listing and "build bot" in listing and key not in listing
    assert cli_main(["keys", "revoke", "build bot"]) == 0 and verify_key(key) is None
    capsys.readouterr()
    assert cli_main(["keys", "revoke", key]) == 1
    assert capsys.readouterr().err.startswith("error: key: no key matches")


# -- webhooks -------------------------------------------------------------------------------------------------


def test_webhook_delivery_retries_until_accepted():
    rec = Receiver(statuses=(500, 503))
    with serve_http(rec.handler) as (url, _):
        ok = deliver(f"{url}/hook", {"id": "j1", "status": "completed"}, "whsec_x", attempts=4, backoff=0.01,
                     timeout=5, allow_private=True)
    assert ok and rec.calls.qsize() == 3
    for _ in range(3):
        headers, body = rec.next(1)
        assert verify_signature("whsec_x", body, headers[SIGNATURE_HEADER])


def test_webhook_gives_up_after_its_attempts():
    rec = Receiver(statuses=(500,) * 5)
    with serve_http(rec.handler) as (url, _):
        assert not deliver(f"{url}/hook", {"id": "j2"}, None, attempts=2, backoff=0.01, timeout=5, allow_private=True)
    assert rec.calls.qsize() == 2
    assert SIGNATURE_HEADER not in rec.next(1)[0]


def test_signatures_expire():
    body = b'{"id":"x"}'
    header = signature_header("whsec_s", body, timestamp=1_000_000)
    assert verify_signature("whsec_s", body, header, now=1_000_100)
    assert not verify_signature("whsec_s", body, header, now=1_000_000 + 3600)
    assert not verify_signature("whsec_s", body, "t=abc,v1=00")


# -- SSRF, shared files, start-up warnings -----------------------------------------------------------------------


@pytest.fixture
def strict_api(tmp_path):
    """A server with the defaults: private and loopback addresses refused."""
    key, _ = create_key(home=tmp_path)
    with serve_app(create_app(ServerSettings(), home=tmp_path)) as url:
        with httpx.Client(headers={"Authorization": f"Bearer {key}"}, base_url=url, timeout=30) as client:
            yield client


@pytest.mark.parametrize("form_state, webhook, field", [
    ({"image": "http://127.0.0.1:9/a.png", "audio": "https://8.8.8.8/a.wav"}, None, "image"),
    ({"image": "https://8.8.8.8/a.png", "audio": "http://localhost/a.wav"}, None, "audio"),
    ({"image": "https://8.8.8.8/a.png", "audio": "http://169.254.169.254/latest/meta-data"}, None, "audio"),
    ({"image": "https://8.8.8.8/a.png", "audio": "http://[::1]/a.wav"}, None, "audio"),
    ({"image": "https://8.8.8.8/a.png", "audio": "http://10.1.2.3/a.wav"}, None, "audio"),
    ({"image": "https://8.8.8.8/a.png", "audio": "https://8.8.8.8/a.wav"}, "https://127.0.0.1/hook", "webhook"),
    ({"image": "https://8.8.8.8/a.png", "audio": "https://8.8.8.8/a.wav"}, "http://192.168.1.2/hook", "webhook"),
])
def test_private_addresses_are_refused_by_default(strict_api, form_state, webhook, field):
    body = {"formState": form_state, **({"webhook": webhook} if webhook else {})}
    response = strict_api.post("/api/v1/lipsync-image", json=body)
    assert response.status_code == 400
    assert response.json()["field"] == field and "private address" in response.json()["error"]


def test_shared_files_are_served_until_they_expire(api, media):
    path = share_file(media / "hi.wav", ttl=60, home=api["home"])
    assert re.fullmatch(r"/api/v1/media/[\w-]+/hi\.wav", path)
    response = httpx.get(api["url"] + path)  # no key: the token is the permission
    assert response.status_code == 200 and response.content == (media / "hi.wav").read_bytes()
    expired = share_file(media / "hi.wav", ttl=-1, home=api["home"])
    assert httpx.get(api["url"] + expired).status_code == 404
    assert httpx.get(api["url"] + "/api/v1/media/nope/hi.wav").status_code == 404


def test_startup_warnings(monkeypatch):
    monkeypatch.delenv("LIPSYNC_ALLOW_PRIVATE_URLS", raising=False)
    assert startup_warnings("127.0.0.1", share=False, auth=None) == []
    assert startup_warnings("localhost", share=False, auth=None) == []
    assert startup_warnings("0.0.0.0", share=False, auth="me:pw") == []
    [exposed] = startup_warnings("0.0.0.0", share=False, auth=None)
    assert "0.0.0.0" in exposed and "--auth" in exposed
    [shared] = startup_warnings("127.0.0.1", share=True, auth=None)
    assert "share link" in shared
    monkeypatch.setenv("LIPSYNC_ALLOW_PRIVATE_URLS", "1")
    assert startup_warnings("127.0.0.1", share=False, auth=None) == []
    assert any("LIPSYNC_ALLOW_PRIVATE_URLS" in w for w in startup_warnings("0.0.0.0", share=False, auth="me:pw"))


# -- restarts -------------------------------------------------------------------------------------------------------


def start_server(home: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "LIPSYNC_HOME": str(home), "LIPSYNC_ALLOW_PRIVATE_URLS": "1", "LIPSYNC_LOG": "ERROR"}
    log = home / "server.log"
    with log.open("ab") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "lipsync.server", "--port", str(port)], env=env,
                                stdout=subprocess.DEVNULL, stderr=stderr)
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/v1/jobs/x")
            return proc
        except httpx.TransportError:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)


def job_state(home: Path, job_id: str) -> str:
    with sqlite3.connect(home / "server.db") as conn:
        return conn.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()[0]


def test_a_killed_server_fails_the_running_job_and_resumes_the_queued_one(tmp_path, media_url, receiver):
    hook_url, rec = receiver
    key, _ = create_key(home=tmp_path)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    client = httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=30)
    proc = start_server(tmp_path, port)
    try:
        state = {"image": f"{media_url}/astronaut.png", "audio": f"{media_url}/hi.wav"}
        running = client.post(f"{url}/api/v1/lipsync-image",
                              json={"formState": state, "webhook": f"{hook_url}/killed"}).json()["id"]
        queued = client.post(f"{url}/api/v1/lipsync-image", json={"formState": state}).json()["id"]
        deadline = time.monotonic() + 30
        while job_state(tmp_path, running) != "running":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert job_state(tmp_path, queued) == "queued"

        proc = start_server(tmp_path, port)
        failed = client.get(f"{url}/api/v1/jobs/{running}").json()
        assert failed["status"] == "failed" and failed["error"] == INTERRUPTED and failed["output"] is None
        headers, raw = rec.next()  # the interrupted job's webhook is still delivered
        assert json.loads(raw)["id"] == running and json.loads(raw)["status"] == "failed"
        resumed = wait_for(client, url, queued)
        assert resumed["status"] == "completed", resumed["error"]
    finally:
        proc.terminate()
        proc.wait(30)
        client.close()


def test_a_job_cut_off_by_a_clean_shutdown_resumes_at_the_next_start(tmp_path, media_url):
    key, _ = create_key(home=tmp_path)
    headers = {"Authorization": f"Bearer {key}"}
    served = tmp_path / "served"
    served.mkdir()
    # Longer speech, so the render is still going when the server stops.
    make_speech(served / "long.wav", "Bob made a map of the moon and the bay, before the boat came back.")
    settings = ServerSettings(allow_private_urls=True)
    with static_files(served) as files:
        with serve_app(create_app(settings, home=tmp_path)) as url:
            state = {"image": f"{media_url}/astronaut.png", "audio": f"{files}/long.wav"}
            job_id = httpx.post(f"{url}/api/v1/lipsync-image", json={"formState": state}, headers=headers).json()["id"]
            deadline = time.monotonic() + 30
            while job_state(tmp_path, job_id) != "running":
                assert time.monotonic() < deadline
                time.sleep(0.02)
        # Leaving the block stopped the server: the render was cancelled and the job went back to the queue.
        assert job_state(tmp_path, job_id) == "queued"
        with serve_app(create_app(settings, home=tmp_path)) as url, httpx.Client(headers=headers) as client:
            job = wait_for(client, url, job_id)
    assert job["status"] == "completed", job["error"]


def test_server_starts_without_the_render_stack():
    """Start-up stays light: the API answers before OpenCV, mediapipe or the pipeline are imported; the
    first job loads them (its worker imports `run_job`)."""
    code = (
        "import sys\n"
        "from starlette.testclient import TestClient\n"
        "from lipsync.server import create_app\n"
        "with TestClient(create_app()) as client:\n"
        "    assert client.get('/api/v1/jobs/x').status_code == 401\n"
        "heavy = sorted({'cv2', 'mediapipe', 'lipsync.pipeline', 'lipsync.jobs.runner'} & set(sys.modules))\n"
        "print(heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_broken_render_install_fails_the_job_with_the_reason(monkeypatch):
    """The render stack loads with the first job: if it cannot (a broken install), that job says why."""
    from lipsync.errors import EngineError
    from lipsync.server import worker

    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "lipsync.jobs.runner", None)  # what a failing import looks like
        with pytest.raises(EngineError, match="render engine could not be loaded"):
            worker._render_entry()
    assert callable(worker._render_entry())
