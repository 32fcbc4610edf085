"""The studio as an attacker meets it: real HTTP against the app (UI + API on one port) on loopback.

Each test drives Gradio's own wire protocol by hand (queue/join, run/predict, upload), as a script or a
hostile page would, rather than the event functions: the checks must hold on the server.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from lipsync import config
from lipsync.server import keys
from lipsync.ui.access import OWNER_COOKIE, SESSION_COOKIE, Access
from lipsync.ui.studio import Limits, Studio

from conftest import make_speech, save_rgb


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Running:
    """`app.build_app` served by uvicorn on a free loopback port, in a thread."""

    def __init__(self, auth=None, studio=None):
        import app
        import uvicorn

        self.port = _free_port()
        self.studio = studio or Studio(limits=Limits())
        self.app, self.blocks = app.build_app(self.studio, auth, host="127.0.0.1")
        self.access: Access = self.app.state.access
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "Running":
        self.thread.start()
        while not self.server.started:
            assert self.thread.is_alive()
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def browser(self, owner: bool = False) -> "Browser":
        b = Browser(self)
        if owner:
            r = b.http.get(f"/?token={self.access.token}")
            assert r.status_code == 303 and r.headers["location"] == "/"
            assert OWNER_COOKIE in b.http.cookies
        return b


class Browser:
    """One browser: its cookies, its Gradio session, and calls to the studio's events by elem_id."""

    def __init__(self, app: Running):
        self.app = app
        self.http = httpx.Client(base_url=app.url, timeout=120, follow_redirects=False)
        assert self.http.get("/").status_code == 200  # the page sets the session cookie
        self.config = self.http.get("/config").json()
        self.session = hashlib.sha1(str(id(self)).encode()).hexdigest()[:11]

    def fn(self, elem_id: str, event: str) -> dict:
        ids = {c["id"]: c["props"].get("elem_id") for c in self.config["components"]}
        for dep in self.config["dependencies"]:
            if any(ids.get(t[0]) == elem_id and t[1] == event for t in dep["targets"]):
                return dep
        raise KeyError(f"no {event} event on {elem_id}")

    def call(self, elem_id: str, event: str, data: list) -> dict:
        """Run an event as the browser would: {"data": [...]} or {"error": "..."}."""
        dep = self.fn(elem_id, event)
        body = {"data": data, "fn_index": dep["id"], "session_hash": self.session, "event_data": None,
                "trigger_id": dep["targets"][0][0]}
        if not dep.get("queue", True):
            r = self.http.post("/gradio_api/run/predict", json=body)
            payload = r.json()
            return payload if r.status_code == 200 else {"error": payload.get("error") or str(payload)}
        r = self.http.post("/gradio_api/queue/join", json=body)
        assert r.status_code == 200, r.text
        with self.http.stream("GET", "/gradio_api/queue/data", params={"session_hash": self.session}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                if msg.get("msg") == "process_completed":
                    out = msg.get("output") or {}
                    return out if msg.get("success") else {"error": out.get("error") or "failed"}
        raise AssertionError("the event stream ended without a result")

    def upload(self, path: Path) -> dict:
        r = self.http.post("/gradio_api/upload", files={"files": (path.name, path.read_bytes())})
        assert r.status_code == 200, r.text
        return file_data(r.json()[0], path.name)


def file_data(path, name: str = "file") -> dict:
    return {"path": str(path), "orig_name": name, "meta": {"_type": "gradio.FileData"}}


@pytest.fixture()
def secret_image(tmp_path, astronaut) -> Path:
    """An image elsewhere on disk that the studio must never read for a browser."""
    (tmp_path / "private").mkdir()
    path = save_rgb(tmp_path / "private" / "secret.png", astronaut[:64, :64])
    assert path.is_file()
    return path


@pytest.fixture(scope="module")
def short_speech(media_dir) -> Path:
    return make_speech(media_dir / "ui_security.wav", "Pass the map.", speed=170)


# -- 1. no file reads -----------------------------------------------------------------------------


def test_ui_never_reads_a_file_it_did_not_receive(secret_image, short_speech, tmp_path):
    outside_json = tmp_path / "private" / "settings.json"
    outside_json.write_text(json.dumps({"name": "leak", "resolution": "720p", "description": "TOP SECRET"}))
    with Running() as app:
        owner = app.browser(owner=True)
        # Save preset with a mask named by path: refused, nothing copied into the data folder.
        save = owner.fn("image-save-preset", "click")
        n_inputs = len(save["inputs"])
        data = ["mine", None, None, "480p", "builtin", file_data(secret_image, "secret.png")] + [None] * (n_inputs - 6)
        result = owner.call("image-save-preset", "click", data)
        assert "error" in result
        uploads = config.home() / "uploads"
        copied = [p for p in uploads.rglob("*") if p.is_file()] if uploads.exists() else []
        assert copied == []

        # The cost box says the same for a file that exists and one that does not, and names neither.
        exists = owner.call("image-audio", "change", [file_data(secret_image), "480p"])
        missing = owner.call("image-audio", "change", [file_data(tmp_path / "nope.wav"), "480p"])
        assert "error" in exists and "error" in missing
        # (Gradio's refusal repeats the path the request sent, and nothing about the file.)
        assert exists["error"].replace(str(secret_image), "P") == missing["error"].replace(str(tmp_path / "nope.wav"), "P")
        assert "PNG" not in exists["error"] and "image" not in exists["error"]

        # The preset menu takes names, never paths.
        for typed in (str(outside_json), "/etc/shadow", "../../private/settings"):
            shown = owner.call("image-preset", "change", [typed])
            assert "TOP SECRET" not in json.dumps(shown) and "720p" not in json.dumps(shown.get("data", []))
            assert "error" in shown

        # Below Gradio, the studio's own handlers refuse it too (a second layer), before any job exists.
        from lipsync.errors import InputError
        from lipsync.ui import events

        with pytest.raises(InputError, match="image: must be a file uploaded to this studio"):
            events.generate(app.studio, "image", {"image": str(secret_image), "audio": str(short_speech)},
                            roots=app.studio.file_roots())
        assert not list(config.jobs_dir().glob("*.json"))

        # A real upload goes through: the same cost box prices it.
        uploaded = owner.upload(short_speech)
        priced = owner.call("image-audio", "change", [uploaded, "480p"])
        assert "credits" in json.dumps(priced), priced


# -- 2. only the owner administers ------------------------------------------------------------------


def test_only_the_owner_manages_keys_and_presets():
    with Running() as app:
        visitor, owner = app.browser(), app.browser(owner=True)
        info = visitor.http.get("/gradio_api/info").json()
        listed = json.dumps(info)
        assert "make_key" not in listed and "drop_key" not in listed and "delete" not in listed

        refused = visitor.call("settings-create-key", "click", ["sneaky"]) if _has(visitor, "settings-create-key") \
            else _call_by_function(visitor, "make_key", ["sneaky"])
        assert "error" in refused and "owner" in refused["error"]
        assert keys.list_keys() == []

        made = _call_by_function(owner, "make_key", ["laptop"])
        assert "error" not in made, made
        key = made["data"][0]["value"] if isinstance(made["data"][0], dict) else made["data"][0]
        assert key.startswith("sk_") and [k.name for k in keys.list_keys()] == ["laptop"]

        revoked = _call_by_function(visitor, "drop_key", ["laptop"])
        assert "error" in revoked and [k.name for k in keys.list_keys()] == ["laptop"]

        # A wrong token is no token: still a visitor, and it counts towards the brake.
        guess = httpx.Client(base_url=app.url)
        assert guess.get("/?token=wrong").status_code == 200
        assert OWNER_COOKIE not in guess.cookies


def _has(browser: Browser, elem_id: str) -> bool:
    return any(c["props"].get("elem_id") == elem_id for c in browser.config["components"])


def _call_by_function(browser: Browser, name: str, data: list) -> dict:
    """Call a handler by its Python name, as a hand-made request with the fn_index would."""
    for dep in browser.config["dependencies"]:
        if dep.get("api_name") == name:
            body = {"data": data, "fn_index": dep["id"], "session_hash": browser.session, "event_data": None,
                    "trigger_id": dep["targets"][0][0]}
            r = browser.http.post("/gradio_api/queue/join", json=body)
            assert r.status_code == 200, r.text
            with browser.http.stream("GET", "/gradio_api/queue/data", params={"session_hash": browser.session}) as s:
                for line in s.iter_lines():
                    if line.startswith("data:"):
                        msg = json.loads(line[5:])
                        if msg.get("msg") == "process_completed":
                            out = msg.get("output") or {}
                            return out if msg.get("success") else {"error": out.get("error") or "failed"}
    raise KeyError(name)


def test_host_origin_and_login_brake(monkeypatch):
    monkeypatch.setenv("LIPSYNC_PUBLIC_URL", "https://studio.example.org")
    with Running(auth="ann:secret") as app:
        http = httpx.Client(base_url=app.url)
        assert http.get("/", headers={"host": "attacker.example"}).status_code == 400  # DNS rebinding
        assert http.get("/", headers={"host": f"localhost:{app.port}"}).status_code != 400
        assert http.get("/", headers={"host": "studio.example.org"}).status_code != 400
        # A page elsewhere may not call in with this browser's cookies, nor preflight.
        cross = http.post("/gradio_api/queue/join", json={}, headers={"origin": "https://attacker.example",
                                                                       "cookie": "access-token=x"})
        assert cross.status_code == 403
        pre = http.options("/gradio_api/queue/join", headers={"origin": "https://attacker.example",
                                                               "access-control-request-method": "POST"})
        assert pre.status_code == 403 and "access-control-allow-origin" not in pre.headers
        same = http.get("/config", headers={"origin": app.url})
        assert same.status_code != 403

        statuses = [http.post("/login", data={"username": "ann", "password": f"guess{i}"}).status_code
                    for i in range(5)]
        assert statuses == [400] * 5
        braked = http.post("/login", data={"username": "ann", "password": "secret"})
        assert braked.status_code == 429 and int(braked.headers["retry-after"]) > 0


# -- 3. visitors see their own work ---------------------------------------------------------------------


def test_visitors_see_only_their_own_jobs(portrait_small_for_security, short_speech):
    from lipsync.jobs import JobRecord, records
    from lipsync.ui import events

    with Running() as app:
        alice, bob, owner = app.browser(), app.browser(), app.browser(owner=True)
        # Alice renders through the studio.
        form = {"image": str(portrait_small_for_security), "audio": str(short_speech), "resolution": "480p", "seed": 1}
        viewer = app.access.viewer(_Cookies(alice.http.cookies))
        job = events.generate(app.studio, "image", form, viewer=viewer).record
        rest = JobRecord(model="lipsync-image", status="completed", request={})  # a REST job: no session
        records.save(rest)

        def rows(browser):
            out = _call_by_function(browser, "rows", [])
            assert "error" not in out, out
            return out["data"][0]["data"] if isinstance(out["data"][0], dict) else out["data"][0]

        assert len(rows(alice)) == 1 and rows(bob) == [] and len(rows(owner)) == 2

        # Outputs are not served by their path in the data folder, to anyone.
        for browser in (alice, bob, owner):
            assert browser.http.get(f"/gradio_api/file={job.output}").status_code == 403
        # Bob cannot delete Alice's job.
        assert events.history_delete(job.id, app.access.viewer(_Cookies(bob.http.cookies))) == "Already deleted."
        assert Path(job.output).is_file()


class _Cookies:
    """The part of a gr.Request that Access reads."""

    def __init__(self, jar):
        self.cookies = {name: jar[name] for name in jar}
        self.username = None
        self.session_hash = None


@pytest.fixture(scope="module")
def portrait_small_for_security(media_dir, astronaut) -> Path:
    import cv2

    return save_rgb(media_dir / "security_portrait.png", cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA))


def test_session_cookie_is_http_only():
    with Running() as app:
        r = httpx.get(app.url + "/")
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(f"{SESSION_COOKIE}=") and "HttpOnly" in cookie
