"""The studio's Settings → Models: the owner downloads (with progress), verifies and removes an engine's
weights; visitors cannot. Real HTTP on loopback both ways: the studio over Gradio's wire protocol, and
huggingface_hub's real download from a local stand-in for the Hub (tests/hubcache.py's FakeHub)."""

from __future__ import annotations

import json
import os
import sys
import types

import pytest

from hubcache import FakeHub
from lipsync import engines
from lipsync.engines.base import Availability, EngineSpec
from lipsync.errors import InputError, LipsyncError, NotAllowed
from lipsync.models import WeightFile, WeightRepo, hub, manager
from lipsync.ui import events
from lipsync.ui.access import Viewer

from test_ui_security import Running

REPO_ID = "test-org/tiny-voice"
# over huggingface_hub's 10 MiB read chunk, so the progress bar moves before the end
FILES = {"model.safetensors": os.urandom(12 * 2**20), "config.json": b'{"hidden": 4}\n'}
REPO = WeightRepo(REPO_ID, tuple(WeightFile(p, len(d)) for p, d in FILES.items()), "apache-2.0")
VISITOR = Viewer(owner=False, session="someone-else")


@pytest.fixture
def voice_engine(monkeypatch, tmp_path):
    """A registered engine that declares REPO's weights, ready once they are in the cache."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    module = types.ModuleType("voice_engine")
    module.SPEC = EngineSpec(name="voice", title="Voice (test)", description="declares weights only",
                             modes=frozenset({"lipsync-image"}), options=frozenset(), weights=(REPO,),
                             code_licence="MIT")
    module.availability = lambda: Availability("ready") if not manager.missing(module.SPEC.weights) else \
        Availability("download", "weights missing")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(engines.KNOWN_ENGINES, "voice", module.__name__)
    return module


@pytest.fixture
def online_hub(monkeypatch):
    """huggingface_hub pointed at a FakeHub, as HF_ENDPOINT would before import; network allowed."""
    from huggingface_hub import constants

    with FakeHub(REPO_ID, FILES) as fake:
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        monkeypatch.setattr(constants, "ENDPOINT", fake.url)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", fake.url + "/{repo_id}/resolve/{revision}/{filename}")
        yield fake


def _row(engine: str) -> list:
    return next(r for r in events.models_rows() if r[0] == engine)


def test_owner_downloads_verifies_and_removes_with_progress(voice_engine, online_hub):
    assert _row("voice")[1:4] == [REPO_ID, "apache-2.0", "12.6 MB"]
    assert _row("voice")[4].startswith("needs download (12.6 MB, 2 of 2 files)")
    assert ("Voice (test)", "voice") in events.model_engines()

    seen = []
    note = events.download_models("voice", progress=lambda fraction, label: seen.append((fraction, label)))
    assert note.startswith("voice: ready (downloaded 12.6 MB;") and online_hub.commit[:10] in note
    assert _row("voice")[4] == f"ready (commit {online_hub.commit[:10]})"
    assert hub.read_pins()[REPO_ID] == online_hub.commit
    assert all(label.startswith("Downloading the engine's weights") for _, label in seen)
    fractions = [f for f, _ in seen]
    assert 0 < min(fractions) < 1 and fractions[-1] == 1.0 and fractions == sorted(fractions)

    assert events.verify_models("voice").startswith("✓ voice: all 2 files match")
    blob = manager.status(REPO).files[0].local.resolve()
    blob.write_bytes(b"not the weights")
    report = events.verify_models("voice")
    assert "1 of 2 files failed" in report and f"`{REPO_ID}/model.safetensors`" in report

    assert "voice: removed test-org/tiny-voice" in events.remove_models("voice")
    assert _row("voice")[4].startswith("needs download") and REPO_ID not in hub.read_pins()


def test_visitors_may_not_touch_weights_and_nothing_is_fetched(voice_engine, online_hub):
    for act in (events.download_models, events.verify_models, events.remove_models):
        with pytest.raises(NotAllowed, match="owner"):
            act("voice", VISITOR)
    assert online_hub.ranges == [] and manager.missing((REPO,))


def test_offline_download_names_files_and_command(voice_engine):
    with pytest.raises(LipsyncError) as err:
        events.download_models("voice")
    message = str(err.value)
    assert "\n" not in message and f"{REPO_ID}/model.safetensors" in message
    assert "`lipsync models download voice`" in message
    with pytest.raises(InputError, match="models_engine"):
        events.download_models("builtin")


def _click(browser, elem_id: str, data: list) -> tuple[dict, list[str]]:
    """Click a button over the wire: (result, the progress labels streamed while it ran)."""
    dep = browser.fn(elem_id, "click")
    body = {"data": data, "fn_index": dep["id"], "session_hash": browser.session, "event_data": None,
            "trigger_id": dep["targets"][0][0]}
    assert browser.http.post("/gradio_api/queue/join", json=body).status_code == 200
    labels = []
    with browser.http.stream("GET", "/gradio_api/queue/data", params={"session_hash": browser.session}) as stream:
        for line in stream.iter_lines():
            if not line.startswith("data:"):
                continue
            msg = json.loads(line[5:])
            if msg.get("msg") == "progress":
                labels += [p.get("desc") or "" for p in msg.get("progress_data") or []]
            if msg.get("msg") == "process_completed":
                out = msg.get("output") or {}
                return (out if msg.get("success") else {"error": out.get("error") or "failed"}), labels
    raise AssertionError("the event stream ended without a result")


def test_settings_models_panel_over_http(voice_engine, online_hub):
    with Running() as app:
        visitor, owner = app.browser(), app.browser(owner=True)
        refused, _ = _click(visitor, "models-download", ["voice"])
        assert "owner" in refused["error"] and online_hub.ranges == []

        done, labels = _click(owner, "models-download", ["voice"])
        assert "error" not in done, done
        assert done["data"][0].startswith("voice: ready")
        assert any(label.startswith("Downloading the engine's weights") for label in labels), labels
        table = done["data"][1]
        rows = table["value"]["data"] if isinstance(table, dict) and "value" in table else table["data"]
        assert [r for r in rows if r[0] == "voice"][0][4].startswith("ready (commit")

        verified, _ = _click(owner, "models-verify", ["voice"])
        assert verified["data"][0].startswith("✓ voice")
        assert "owner" in _click(visitor, "models-remove", ["voice"])[0]["error"]
        assert not manager.missing((REPO,))
