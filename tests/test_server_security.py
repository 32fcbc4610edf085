"""The REST API as an attacker would try it, over real HTTP on loopback (issue 8): address rules and DNS
rebinding, size limits, ownership, link expiry, revoked keys, throttling, bad rows, leftovers, file
permissions, content types, strict input; plus a property-based fuzz of every endpoint from the schema.

Traffic stays on loopback: `net` stands in for DNS and for the internet (a name resolves to what the
test says; a connection to a "public" address is carried to a loopback server, any other is refused).
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import socket
import sqlite3
import stat
import threading
import time
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from conftest import make_speech
from lipsync.jobs.records import JobRecord
from lipsync.server import ServerSettings, create_app
from lipsync.server.keys import create_key, revoke_key
from lipsync.server.links import share_file
from lipsync.server.store import INTERRUPTED, JobStore, ServerJob
from lipsync.server.webhooks import SIGNATURE_HEADER, deliver
from test_server import (MB, Receiver, job_state, start_server, free_port, media, media_url,  # noqa: F401
                         serve_app, serve_http, static_files, wait_for)

PUBLIC = "93.184.216.34"  # stands for an internet host in `net`


# -- a network the test controls ------------------------------------------------------------------------


class FakeNet:
    """Names resolve to the answers a test scripts (one list per lookup, the last repeated); a connection
    to an address in `hosted` is carried to the same port on 127.0.0.1; loopback connects as usual;
    anything else is refused. Every connection's destination is recorded as asked (name or address)."""

    def __init__(self, real_getaddrinfo, real_connect):
        self._getaddrinfo, self._connect = real_getaddrinfo, real_connect
        self.answers: dict[str, list[list[str]]] = {}
        self.lookups: dict[str, int] = {}
        self.hosted: set[str] = set()
        self.connects: list[tuple[str, int]] = []

    def outbound(self, api_url: str) -> list[tuple[str, int]]:
        """Connections other than the test's own to the API server."""
        return [c for c in self.connects if c != ("127.0.0.1", int(api_url.rsplit(":", 1)[1]))]

    def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):
        name = host.decode() if isinstance(host, bytes) else host
        if name in self.answers:
            n = self.lookups[name] = self.lookups.get(name, 0) + 1
            script = self.answers[name]
            addresses = script[min(n, len(script)) - 1]
            port = int(port or 0)
            return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, port, 0, 0)) if ":" in a
                    else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]
        try:
            socket.inet_pton(socket.AF_INET6 if ":" in str(name) else socket.AF_INET, str(name))
        except OSError:
            if name not in ("localhost",):
                raise socket.gaierror(socket.EAI_NONAME, f"fake network: no such name {name!r}") from None
        return self._getaddrinfo(host, port, family, type, proto, flags)

    def create_connection(self, address, *args, **kwargs):
        host, port = address[0], address[1]
        self.connects.append((host, port))
        if host in self.hosted:
            return self._connect(("127.0.0.1", port), *args, **kwargs)
        if host in ("127.0.0.1", "::1", "localhost") or self.answers.get(host, [[]])[-1] == ["127.0.0.1"]:
            return self._connect(address, *args, **kwargs)  # today's code connecting by name lands here
        raise ConnectionRefusedError(f"fake network: {host} is unreachable")


@pytest.fixture
def net(monkeypatch) -> FakeNet:
    fake = FakeNet(socket.getaddrinfo, socket.create_connection)
    monkeypatch.setattr(socket, "getaddrinfo", fake.getaddrinfo)
    monkeypatch.setattr(socket, "create_connection", fake.create_connection)
    return fake


@contextmanager
def api_server(home: Path, **settings) -> Iterator[tuple[str, httpx.Client, str]]:
    """A server on `home` with these settings; yields (url, a client with a fresh key, that key)."""
    key, _ = create_key(home=home)
    with serve_app(create_app(ServerSettings(**settings), home=home)) as url:
        with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
            yield url, client, key


def image_job(media_url: str, **extra) -> dict:
    return {"image": f"{media_url}/astronaut.png", "audio": f"{media_url}/hi.wav", **extra}


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    """One server with the default address rules (private and loopback refused)."""
    home = tmp_path_factory.mktemp("strict")
    with api_server(home, auth_failures=1000) as (url, client, key):
        yield dict(url=url, client=client, key=key, home=home)


@pytest.fixture(scope="module")
def trusting(tmp_path_factory):
    """One server that fetches from loopback (LIPSYNC_ALLOW_PRIVATE_URLS=1), for jobs that run."""
    home = tmp_path_factory.mktemp("trusting")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LIPSYNC_HOME", str(home))
        with api_server(home, allow_private_urls=True, max_media_bytes=2 * MB, auth_failures=1000,
                        webhook_backoff=0.1) as (url, client, key):
            yield dict(url=url, client=client, key=key, home=home)


# -- 5. SSRF: every address checked, and the connection made to the address that was checked --------------


NOT_PUBLIC = ["100.64.0.1", "100.100.100.200", "192.0.0.8", "192.0.0.170", "198.18.0.1", "224.0.0.1",
              "255.255.255.255", "0.1.2.3", "2002:7f00:1::1", "2002:c0a8:101::1", "2002:a9fe:a9fe::1",
              "::ffff:10.0.0.1", "::10.0.0.1", "::ffff:0:a00:1", "64:ff9b::a00:1", "64:ff9b::7f00:1",
              "64:ff9b:1::1", "fec0::1", "ff0e::1", "fe80::1", "fd00::1"]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_media_and_webhook_hosts_must_be_globally_routable(strict, net, address):
    url, client = strict["url"], strict["client"]
    net.answers["cdn.test"] = [[address]]
    net.answers["hooks.test"] = [[address]]
    image = {"formState": {"image": "https://cdn.test/a.png", "audio": f"https://{PUBLIC}/a.wav"}}
    response = client.post(f"{url}/api/v1/lipsync-image", json=image)
    assert response.status_code == 400 and response.json()["field"] == "image", response.text
    assert "private address" in response.json()["error"]
    hook = {"webhook": "https://hooks.test/h", "formState": {"image": f"https://{PUBLIC}/a.png",
                                                             "audio": f"https://{PUBLIC}/a.wav"}}
    response = client.post(f"{url}/api/v1/lipsync-image", json=hook)
    assert response.status_code == 400 and response.json()["field"] == "webhook", response.text
    assert net.outbound(url) == [], net.connects


def test_public_addresses_pass_the_rule():
    from lipsync.media.addresses import is_public

    for address in ("8.8.8.8", "2606:4700::1", "::ffff:8.8.8.8", "2002:808:808::1", "64:ff9b::808:808"):
        assert is_public(address), address
    assert not any(is_public(address) for address in NOT_PUBLIC)


def test_a_name_that_rebinds_is_fetched_from_the_address_that_was_checked(tmp_path, net, media):
    """Two lookups answer a public address, later ones 127.0.0.1: today's code checked the name, then let
    the HTTP client resolve it again to connect (to 127.0.0.1)."""
    with static_files(media) as files, api_server(tmp_path) as (url, client, _):
        port = int(files.rsplit(":", 1)[1])
        net.hosted.add(PUBLIC)
        for name in ("img.test", "aud.test"):
            net.answers[name] = [[PUBLIC], [PUBLIC], ["127.0.0.1"]]
        state = {"image": f"http://img.test:{port}/astronaut.png", "audio": f"http://aud.test:{port}/hi.wav"}
        job = wait_for(client, url, client.post(f"{url}/api/v1/lipsync-image", json={"formState": state}).json()["id"])
    assert job["status"] == "completed", job["error"]
    assert {host for host, to in net.connects if to == port} == {PUBLIC}, net.connects


def test_a_webhook_connects_only_to_the_address_it_checked(net):
    rec = Receiver()
    with serve_http(rec.handler) as (hook_url, _):
        port = int(hook_url.rsplit(":", 1)[1])
        net.answers["hooks.test"] = [["127.0.0.1"]]
        assert deliver(f"http://hooks.test:{port}/h", {"id": "j"}, "whsec_x", attempts=1, backoff=0, timeout=5,
                       allow_private=True)
        headers, _ = rec.next(5)
        assert headers["Host"] == f"hooks.test:{port}"  # the name travels in the Host header
    assert net.connects == [("127.0.0.1", port)]

    # Checked public, then rebound to a private address: refused before any connection is made.
    net.connects.clear()
    net.answers["rebind.test"] = [[PUBLIC], ["10.0.0.5"]]
    assert not deliver("https://rebind.test/h", {"id": "j"}, "whsec_x", attempts=1, backoff=0, timeout=5,
                       allow_private=False)
    assert net.connects == []


# -- 6. size limits: nothing read past them ------------------------------------------------------------------


class Zeros(io.RawIOBase):
    """`size` bytes of a valid-looking JSON string body or raw data, counting what the client sent."""

    def __init__(self, size: int, prefix: bytes = b""):
        self.size, self.sent, self.prefix = size, 0, prefix

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.size - self.sent)
        chunk = (self.prefix + b"a" * n)[:n] if self.sent == 0 else b"a" * n
        buffer[:n] = chunk
        self.sent += n
        return n


def test_a_chunked_json_body_stops_at_the_limit(strict):
    url, client = strict["url"], strict["client"]
    sent = [0]

    def body():  # chunked (no Content-Length): a valid JSON document of 64 MB, if it were all read
        yield b'{"formState": {"prompt": "'
        for _ in range(64):
            sent[0] += MB
            yield b"a" * MB
        yield b'"}}'

    response = client.post(f"{url}/api/v1/lipsync-image", content=body(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["field"] == "body", response.text
    assert sent[0] < 24 * MB, f"the server read {sent[0] / MB:g} MB"


def test_a_multipart_upload_stops_at_the_limit(trusting):
    big = Zeros(40 * MB)
    files = {"audio": ("big.wav", big, "audio/wav"), "image": ("a.png", io.BytesIO(b"png"), "image/png")}
    response = trusting["client"].post(f"{trusting['url']}/api/v1/lipsync-image", files=files)
    assert response.status_code == 413, response.text
    assert response.json() == {"error": "audio: upload is larger than 2 MB", "field": "audio"}
    assert big.sent < 24 * MB, f"the server read {big.sent / MB:g} MB"
    assert not any((trusting["home"] / "server" / "uploads").glob("*/*"))


# -- 12. deep JSON ---------------------------------------------------------------------------------------------


def test_deeply_nested_json_is_a_400_naming_the_body(strict, caplog):
    url, client = strict["url"], strict["client"]
    deep = b"[" * 100_000 + b"]" * 100_000
    with caplog.at_level(logging.ERROR):
        response = client.post(f"{url}/api/v1/lipsync-image", content=deep, headers={"content-type": "application/json"})
        assert response.status_code == 400 and response.json()["field"] == "body", response.text
        nested = '{"formState": {"prompt": ' + "[" * 40 + '"x"' + "]" * 40 + "}}"  # parses, but too deep
        response = client.post(f"{url}/api/v1/lipsync-image", content=nested, headers={"content-type": "application/json"})
        assert response.status_code == 400, response.text
        response = client.post(f"{url}/api/v1/lipsync-image", files={"formState": (None, deep.decode())})
        assert response.status_code == 400 and response.json()["field"] == "formState", response.text
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


# -- 15. strict input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("extra, field", [({"seed": True}, "seed"), ({"seed": "7"}, "seed"), ({"seed": 7.5}, "seed"),
                                          ({"face_index": False}, "face_index"), ({"engine": "nope"}, "engine")])
def test_numbers_are_numbers_and_engines_are_known(strict, extra, field):
    url, client = strict["url"], strict["client"]
    state = {"image": f"https://{PUBLIC}/a.png", "audio": f"https://{PUBLIC}/a.wav", **extra}
    response = client.post(f"{url}/api/v1/lipsync-image", json={"formState": state})
    assert response.status_code == 400 and response.json()["field"] == field, response.text
    assert response.json()["error"].startswith(f"{field}: ")


def test_a_multipart_form_field_may_still_send_a_number_as_text(trusting, media):
    with (media / "astronaut.png").open("rb") as image, (media / "hi.wav").open("rb") as audio:
        response = trusting["client"].post(f"{trusting['url']}/api/v1/lipsync-image", data={"seed": "7"},
                                           files={"image": image, "audio": audio})
    assert response.status_code == 200, response.text
    job = wait_for(trusting["client"], trusting["url"], response.json()["id"])
    assert job["status"] == "completed", job["error"]
    assert JobStore(trusting["home"]).get(job["id"]).record.request["seed"] == 7


# -- 9. ownership, 8. expiring links and deleted jobs -----------------------------------------------------------


def test_a_job_is_seen_only_with_the_key_that_submitted_it(trusting, media_url):
    url, client = trusting["url"], trusting["client"]
    job_id = client.post(f"{url}/api/v1/lipsync-image", json={"formState": image_job(media_url)}).json()["id"]
    job = wait_for(client, url, job_id)
    assert job["status"] == "completed", job["error"]
    other, _ = create_key(home=trusting["home"])
    as_other = {"Authorization": f"Bearer {other}"}
    response = httpx.get(f"{url}/api/v1/jobs/{job_id}", headers=as_other)
    assert response.status_code == 404 and response.json()["error"] == f"job {job_id} not found"
    assert httpx.get(f"{url}/api/v1/files/{job_id}.mp4", headers=as_other).status_code == 404
    assert client.get(f"{url}/api/v1/files/{job_id}.mp4").status_code == 200  # the owner's key downloads too


def test_links_expire_and_each_get_signs_a_fresh_one(tmp_path, media_url, monkeypatch):
    monkeypatch.setenv("LIPSYNC_HOME", str(tmp_path))
    with api_server(tmp_path, allow_private_urls=True, link_ttl=2) as (url, client, _):
        job = wait_for(client, url, client.post(f"{url}/api/v1/lipsync-image",
                                                json={"formState": image_job(media_url)}).json()["id"])
        assert job["status"] == "completed", job["error"]
        link = job["output"]
        assert "exp=" in link and httpx.get(link).status_code == 200
        forged = link.replace("exp=", "exp=9")  # a later expiry under the same signature
        assert httpx.get(forged).status_code == 401
        time.sleep(3)
        expired = httpx.get(link)
        assert expired.status_code == 401 and "expired" in expired.json()["error"]
        fresh = client.get(f"{url}/api/v1/jobs/{job['id']}").json()["output"]
        assert fresh != link and httpx.get(fresh).status_code == 200

        from lipsync.jobs import delete

        delete(job["id"])  # what History's delete does
        gone = client.get(f"{url}/api/v1/jobs/{job['id']}")
        assert gone.status_code == 404 and "no longer exists" in gone.json()["error"], gone.text


# -- 10. revoked keys, slow webhook receivers ---------------------------------------------------------------


class _Slow(SimpleHTTPRequestHandler):
    def do_GET(self):
        time.sleep(2.5)  # holds the single worker while another job waits in the queue
        super().do_GET()

    def log_message(self, *args):
        pass


def test_a_revoked_keys_queued_job_is_cancelled_and_sends_nothing_unsigned(tmp_path, media, media_url):
    rec = Receiver()
    with serve_http(partial(_Slow, directory=str(media))) as (slow, _), serve_http(rec.handler) as (hooks, _):
        with api_server(tmp_path, allow_private_urls=True) as (url, client, _):
            busy = client.post(f"{url}/api/v1/lipsync-image", json={"formState": image_job(slow)}).json()["id"]
            key, info = create_key("to revoke", home=tmp_path)
            queued = httpx.post(f"{url}/api/v1/lipsync-image", headers={"Authorization": f"Bearer {key}"},
                                json={"formState": image_job(media_url), "webhook": f"{hooks}/h"}).json()["id"]
            assert job_state(tmp_path, queued) == "queued"
            assert revoke_key("to revoke", home=tmp_path)
            wait_for(client, url, busy)
            deadline = time.monotonic() + 30
            while job_state(tmp_path, queued) != "done":
                assert time.monotonic() < deadline
                time.sleep(0.1)
            record = JobStore(tmp_path).get(queued).record
            assert record.status == "failed" and record.error == "the API key that submitted this job was revoked"
            time.sleep(1)
    for headers, _ in list(rec.calls.queue):
        assert SIGNATURE_HEADER in headers, "a webhook went out unsigned"


def test_a_webhook_receiver_that_never_answers_delays_no_one_else(tmp_path, media_url):
    rec = Receiver()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)  # connections complete in the kernel; nothing ever reads or answers them
    hang = f"http://127.0.0.1:{silent.getsockname()[1]}/h"
    try:
        with serve_http(rec.handler) as (hooks, _), api_server(tmp_path, allow_private_urls=True, webhook_attempts=1,
                                                                webhook_timeout=30) as (url, client, key):
            missing = {"image": f"{media_url}/missing.png", "audio": f"{media_url}/hi.wav"}  # fails at once
            ids = [client.post(f"{url}/api/v1/lipsync-image", json={"formState": missing, "webhook": hang}).json()["id"]
                   for _ in range(5)]
            for job_id in ids:
                wait_for(client, url, job_id)
            quick = client.post(f"{url}/api/v1/lipsync-image", json={"formState": missing, "webhook": f"{hooks}/h"})
            started = time.monotonic()
            headers, body = rec.next(timeout=10)
            assert json.loads(body)["id"] == quick.json()["id"]
            assert time.monotonic() - started < 10
    finally:
        silent.close()


# -- 11. throttling failed authentication ------------------------------------------------------------------------


def test_repeated_bad_keys_get_429_and_other_clients_are_not_blocked(tmp_path):
    with api_server(tmp_path) as (url, _, key):
        statuses, retry = [], None
        for n in range(30):
            response = httpx.get(f"{url}/api/v1/jobs/x", headers={"Authorization": f"Bearer sk_00000000_{'a' * 31}{n % 10}"})
            statuses.append(response.status_code)
            retry = response.headers.get("retry-after", retry)
        assert statuses[:10] == [401] * 10 and set(statuses[10:]) == {429}, statuses
        assert retry is not None and int(retry) >= 1
        assert httpx.get(f"{url}/api/v1/files/x.mp4?exp=9999999999&sig=00").status_code == 429
        with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2")) as other:
            ok = other.get(f"{url}/api/v1/jobs/x", headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 404  # a good key from another address gets through


# -- 14. shared media ------------------------------------------------------------------------------------------


def test_shared_files_are_served_inline_only_as_media(strict, tmp_path):
    page = tmp_path / "page.html"
    page.write_text("<script>alert(document.cookie)</script>")
    response = httpx.get(strict["url"] + share_file(page, home=strict["home"]))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"].startswith("attachment")
    assert response.headers["x-content-type-options"] == "nosniff"
    image = tmp_path / "face.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n")
    path = share_file(image, home=strict["home"])
    response = httpx.get(strict["url"] + path.rsplit("/", 1)[0] + "/face.html")  # the URL's name decides nothing
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-disposition"].startswith("inline")


# -- 4. unreadable rows and a corrupt database ------------------------------------------------------------


def _add_job(home: Path, key_id: str, form_state: dict, **fields) -> str:
    job = ServerJob(record=JobRecord(model="lipsync-image"), form_state=form_state, base_url="http://127.0.0.1",
                    key_id=key_id, **fields)
    JobStore(home).add(job)
    return job.id


def _spoil(home: Path, job_id: str, column: str, value) -> None:
    with sqlite3.connect(home / "server.db") as conn:
        conn.execute(f"UPDATE jobs SET {column} = ? WHERE id = ?", (value, job_id))


def test_unreadable_rows_fail_their_jobs_and_the_rest_run(tmp_path, media_url, monkeypatch):
    monkeypatch.setenv("LIPSYNC_HOME", str(tmp_path))
    key, info = create_key(home=tmp_path)
    good = _add_job(tmp_path, info.id, image_job(media_url))
    queued_bad = _add_job(tmp_path, info.id, image_job(media_url))
    running_bad = _add_job(tmp_path, info.id, image_job(media_url), state="running")
    done_bad = _add_job(tmp_path, info.id, image_job(media_url), state="done")
    _spoil(tmp_path, queued_bad, "record", "{not json")
    _spoil(tmp_path, running_bad, "record", '{"id": 5}')  # what made start-up fail
    _spoil(tmp_path, done_bad, "form_state", "[1, 2")
    with serve_app(create_app(ServerSettings(allow_private_urls=True), home=tmp_path)) as url, \
            httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        # A row spoilt while the server runs, older than a good job submitted after it.
        live_bad = _add_job(tmp_path, info.id, image_job(media_url), created=time.time() - 60)
        _spoil(tmp_path, live_bad, "uploads", "nope")
        fresh = client.post(f"{url}/api/v1/lipsync-image", json={"formState": image_job(media_url)}).json()["id"]
        for job_id in (queued_bad, running_bad, done_bad, live_bad):
            job = wait_for(client, url, job_id, timeout=30)
            assert job["status"] == "failed" and "could not be read back" in job["error"], job
        for job_id in (good, fresh):
            job = wait_for(client, url, job_id, timeout=60)
            assert job["status"] == "completed", job["error"]


def test_a_corrupt_database_is_moved_aside_with_one_line(tmp_path, capsys):
    from lipsync.cli import main as cli_main

    (tmp_path / "server.db").write_bytes(b"this is not a database\n" * 200)
    port = free_port()
    proc = start_server(tmp_path, port)
    try:
        log = (tmp_path / "server.log").read_text()
        assert "Traceback" not in log
        [line] = [line for line in log.splitlines() if "server.db" in line]
        assert "moved aside" in line and "lipsync keys create" in line
        assert len(list(tmp_path.glob("server.db.corrupt-*"))) == 1
        key, _ = create_key(home=tmp_path)
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/jobs/x", headers={"Authorization": f"Bearer {key}"}).status_code == 404
    finally:
        proc.terminate()
        proc.wait(30)

    # The CLI, meeting a corrupt file, says what to do in one line.
    os.environ["LIPSYNC_HOME"] = str(tmp_path)
    (tmp_path / "server.db").write_bytes(b"\0garbage" * 500)
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"server.db{suffix}").unlink(missing_ok=True)
    assert cli_main(["keys", "list"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "server.db" in err and "move the file aside" in err, err


# -- 7. the data folder is the owner's ---------------------------------------------------------------------


def test_the_data_folder_and_its_files_are_private(tmp_path, media, media_url, monkeypatch):
    home = tmp_path / "fresh" / "home"  # made by the server
    monkeypatch.setenv("LIPSYNC_HOME", str(home))
    rec = Receiver()
    with serve_http(rec.handler) as (hooks, _), api_server(home, allow_private_urls=True) as (url, client, _):
        with (media / "astronaut.png").open("rb") as image:
            first = client.post(f"{url}/api/v1/lipsync-image", files={"image": image},
                                data={"formState": json.dumps({"audio": f"{media_url}/hi.wav"}), "webhook": f"{hooks}/h"})
        with (media / "astronaut.png").open("rb") as image:  # waits behind the first: its upload stays a while
            second = client.post(f"{url}/api/v1/lipsync-image", files={"image": image},
                                 data={"formState": json.dumps({"audio": f"{media_url}/hi.wav"})})
        uploaded = list((home / "server" / "uploads").glob("*/*"))
        assert uploaded and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in uploaded)
        for response in (first, second):
            job = wait_for(client, url, response.json()["id"])
            assert job["status"] == "completed", job["error"]
        rec.next()
    loose = [f"{oct(stat.S_IMODE(p.stat().st_mode))} {p.relative_to(home)}" for p in [home, *home.rglob("*")]
             if stat.S_IMODE(p.stat().st_mode) != (0o700 if p.is_dir() else 0o600)]
    assert loose == [], loose
    assert (home / "server.db").exists() and list((home / "outputs").glob("*.mp4"))


# -- 13. what a kill -9 leaves is cleaned at the next start ------------------------------------------------------


def test_a_killed_servers_leftovers_are_removed_at_the_next_start(tmp_path, media, media_url):
    key, _ = create_key(home=tmp_path)
    served = tmp_path / "served"
    served.mkdir()
    make_speech(served / "long.wav", "Bob made a map of the moon and the bay, before the boat came back home.")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    client = httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=30)
    with static_files(served) as files:
        proc = start_server(tmp_path, port)
        try:
            with (media / "astronaut.png").open("rb") as image:
                job_id = client.post(f"{url}/api/v1/lipsync-image", files={"image": image},
                                     data={"formState": json.dumps({"audio": f"{files}/long.wav"})}).json()["id"]
            deadline = time.monotonic() + 60
            while not list((tmp_path / "outputs").glob(".*.part.mp4")):  # rendering: the output is being written
                assert time.monotonic() < deadline, "the render never started"
                time.sleep(0.02)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            left = [tmp_path / "server" / "uploads" / job_id, tmp_path / "server" / "work" / job_id,
                    *(tmp_path / "outputs").glob(".*.part.mp4")]
            assert all(p.exists() for p in left)

            proc = start_server(tmp_path, port)
            assert not any(p.exists() for p in left), [p for p in left if p.exists()]
            job = client.get(f"{url}/api/v1/jobs/{job_id}").json()
            assert job["status"] == "failed" and job["error"] == INTERRUPTED
        finally:
            proc.terminate()
            proc.wait(30)
            client.close()


# -- the fuzz: every /api/v1 operation of the schema, with generated bodies, paths and queries ------------------


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    """A strict server on a network with no outside (names do not resolve, public addresses refuse)."""
    home = tmp_path_factory.mktemp("fuzz")
    with pytest.MonkeyPatch.context() as mp:
        fake = FakeNet(socket.getaddrinfo, socket.create_connection)
        mp.setattr(socket, "getaddrinfo", fake.getaddrinfo)
        mp.setattr(socket, "create_connection", fake.create_connection)
        mp.setenv("LIPSYNC_HOME", str(home))
        with api_server(home, auth_failures=10_000, max_media_bytes=1 * MB, fetch_timeout=5) as (url, client, key):
            yield dict(url=url, key=key, schema=client.get(f"{url}/api/openapi.json").json())


def test_fuzz_every_endpoint_answers_without_500_and_errors_name_their_field(fuzzed):
    """Schemathesis generates requests from the served OpenAPI schema, fitting it and not (its pytest
    plugin does not run under pytest 9, so its strategies drive Hypothesis directly)."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis.generation.modes import GenerationMode

    schema = schemathesis.openapi.from_dict(fuzzed["schema"])
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} == {
        "POST /api/v1/lipsync-video", "POST /api/v1/lipsync-image", "POST /api/v1/lipsync-image-multi",
        "GET /api/v1/jobs/{job_id}", "GET /api/v1/files/{name}", "GET /api/v1/media/{token}/{name}"}
    auth = {"Authorization": f"Bearer {fuzzed['key']}"}
    seen: dict[int, int] = {}

    def check(case) -> None:
        response = case.call(base_url=fuzzed["url"], headers=auth, timeout=30)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        where = f"{case.method} {case.formatted_path} {str(case.body)[:300]!r}"
        assert response.status_code < 500, (where, response.status_code, response.text[:500])
        if response.status_code >= 400:
            body = response.json()
            assert isinstance(body.get("error"), str) and body["error"], (where, body)
            if response.status_code == 400:
                assert body.get("field") and body["error"].startswith(f"{body['field']}: "), (where, body)

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            run = settings(max_examples=60, deadline=None, database=None, derandomize=True,
                           suppress_health_check=list(HealthCheck))(given(case=operation.as_strategy(mode))(check))
            try:
                run()
            except Unsatisfiable:
                # Only string path parameters: nothing can violate the schema there.
                assert mode is GenerationMode.NEGATIVE and operation.method.upper() == "GET", (operation.path, mode)
    assert seen.get(200) and seen.get(400) and seen.get(404), seen


def test_https_to_a_pinned_address_still_checks_the_certificate_for_the_name(tmp_path, net):
    """The connection goes to the checked address, but SNI and the certificate check use the URL's name:
    a certificate for media.test is accepted for media.test, and refused for another name on that address."""
    import shutil
    import ssl
    import subprocess
    from http.server import ThreadingHTTPServer

    from lipsync.errors import InputError
    from lipsync.media.addresses import PinnedTransport

    if not shutil.which("openssl"):
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=media.test",
                    "-addext", "subjectAltName=DNS:media.test", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    (tmp_path / "a.txt").write_text("hello")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(tmp_path)))
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    trust = ssl.create_default_context(cafile=str(cert))
    net.answers["media.test"] = [["127.0.0.1"]]
    net.answers["other.test"] = [["127.0.0.1"]]
    try:
        with httpx.Client(transport=PinnedTransport("image", allow_private=True, verify=trust)) as client:
            assert client.get(f"https://media.test:{port}/a.txt").text == "hello"
            with pytest.raises(httpx.ConnectError, match="certificate verify failed"):
                client.get(f"https://other.test:{port}/a.txt")
        assert net.connects == [("127.0.0.1", port), ("127.0.0.1", port)]
        with pytest.raises(InputError, match="private address"), \
                httpx.Client(transport=PinnedTransport("image", allow_private=False, verify=trust)) as client:
            client.get(f"https://media.test:{port}/a.txt")
    finally:
        server.shutdown()
        server.server_close()
