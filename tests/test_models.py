"""The model manager offline, on a hub cache laid out by hand (tests/hubcache.py): status, download
(pins, hashes, free-disk check, the offline message), verify, remove, and `lipsync models ...`."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import types
from collections import namedtuple
from pathlib import Path

import pytest

from hubcache import CachedRepo, FakeHub, lay_out
from lipsync import engines
from lipsync.engines.base import Availability, EngineSpec
from lipsync.errors import EngineError
from lipsync.models import WeightFile, WeightRepo, hub, manager
from lipsync.models.cli import engine_line

REPO = Path(__file__).resolve().parents[1]
REPO_ID = "test-org/tiny-weights"
# Two small real files: weights kept in LFS (etag = sha256), a config kept in git (etag = git blob sha1).
FILES = {"unet/diffusion.safetensors": os.urandom(4096) + b"weights", "unet/config.json": b'{"in_channels": 8}\n'}


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


@pytest.fixture
def tiny_cached(hub_cache) -> CachedRepo:
    return lay_out(hub_cache, REPO_ID, FILES)


def tiny_engine(weights: tuple[WeightRepo, ...], name: str = "tiny"):
    """An engine module that declares `weights` (what a neural engine offers, minus rendering)."""
    module = types.ModuleType(f"{name}_engine")
    module.SPEC = EngineSpec(name=name, title="Tiny test engine", description="declares weights only",
                             modes=frozenset({"lipsync-video"}), options=frozenset(), weights=weights, code_licence="MIT")
    module.availability = lambda: Availability("ready")
    return module


@pytest.fixture
def register(monkeypatch):
    def add(module):
        monkeypatch.setitem(sys.modules, module.__name__, module)
        monkeypatch.setitem(engines.KNOWN_ENGINES, module.SPEC.name, module.__name__)
        return module
    return add


def test_cached_files_count_as_ready_without_network(tiny_cached):
    state = manager.status(tiny_cached.weight_repo())
    assert state.ready and state.missing_bytes == 0
    assert all(f.local.resolve() == tiny_cached.blobs[f.file.path].resolve() for f in state.files)
    lines = engine_line(tiny_engine((tiny_cached.weight_repo("creativeml-openrail-m"),)))
    assert lines[0] == "tiny: ready"
    assert "  code licence: MIT" in lines and any("creativeml-openrail-m" in line for line in lines)


def test_missing_file_needs_download_with_its_size(tiny_cached):
    base = tiny_cached.weight_repo()
    repo = WeightRepo(REPO_ID, base.files + (WeightFile("unet/extra.bin", 3_000_000),), "mit")
    state = manager.status(repo)
    assert [f.file.path for f in state.missing] == ["unet/extra.bin"] and state.missing_bytes == 3_000_000
    line = engine_line(tiny_engine((repo,)))[0]
    assert line.startswith("tiny: needs download (3.0 MB") and "lipsync models download tiny" in line


def test_unavailable_engine_says_why(tiny_cached):
    module = tiny_engine((tiny_cached.weight_repo(),))
    module.availability = lambda: Availability("unavailable", "diffusers is not installed")
    assert engine_line(module)[0] == "tiny: unavailable (diffusers is not installed)"


def test_download_offline_is_one_line_naming_files_and_command(hub_cache):
    repo = WeightRepo(REPO_ID, (WeightFile("unet/diffusion.safetensors", 10), WeightFile("unet/config.json", 5)), "mit")
    with pytest.raises(EngineError) as err:
        manager.download([repo], engine="musetalk")
    text = str(err.value)
    assert "\n" not in text
    assert f"{REPO_ID}/unet/diffusion.safetensors" in text and f"{REPO_ID}/unet/config.json" in text
    assert "`lipsync models download musetalk`" in text and "builtin engine works offline" in text


def test_download_of_cached_files_pins_commit_and_records_hashes(tiny_cached, lipsync_home):
    repo = tiny_cached.weight_repo()
    folders = manager.download([repo])
    assert folders[REPO_ID] == tiny_cached.snapshot
    assert hub.read_pins()[REPO_ID] == tiny_cached.commit
    hashes = hub.read_hashes()[REPO_ID]
    assert hashes == {p: b.name for p, b in tiny_cached.blobs.items()}
    assert len(hashes["unet/diffusion.safetensors"]) == 64 and len(hashes["unet/config.json"]) == 40
    for path in (hub.pins_path(), hub.hashes_path()):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_pin_is_written_at_first_resolve_and_reused(tiny_cached, hub_cache):
    repo = tiny_cached.weight_repo()
    first = hub.local_folder(repo)
    assert first == tiny_cached.snapshot and hub.read_pins()[REPO_ID] == tiny_cached.commit
    # `main` moves on (another tool downloaded a newer commit): we keep loading the pinned one
    newer = lay_out(hub_cache, REPO_ID, {p: d + b"v2" for p, d in FILES.items()})
    assert newer.commit != tiny_cached.commit
    assert hub.local_folder(repo) == tiny_cached.snapshot
    assert manager.status(repo).files[0].local.parent.parent == tiny_cached.snapshot
    assert manager.download([repo])[REPO_ID] == tiny_cached.snapshot
    assert hub.read_pins()[REPO_ID] == tiny_cached.commit
    # an explicit revision re-pins
    assert manager.download([repo], revision={REPO_ID: newer.commit})[REPO_ID] == newer.snapshot
    assert hub.read_pins()[REPO_ID] == newer.commit
    assert manager.status(repo).files[0].local.parent.parent == newer.snapshot


def test_verify_passes_then_names_each_corrupt_file(tiny_cached):
    repo = tiny_cached.weight_repo()
    manager.download([repo])
    assert all(c.ok for c in manager.verify([repo]))
    blob = tiny_cached.blobs["unet/diffusion.safetensors"]
    data = bytearray(blob.read_bytes())
    data[100] ^= 1  # one flipped bit
    blob.write_bytes(bytes(data))
    checks = {c.name: c for c in manager.verify([repo])}
    assert not checks[f"{REPO_ID}/unet/diffusion.safetensors"].ok
    assert "sha256" in checks[f"{REPO_ID}/unet/diffusion.safetensors"].problem
    assert checks[f"{REPO_ID}/unet/config.json"].ok
    tiny_cached.blobs["unet/config.json"].write_bytes(b'{"in_channels": 9}\n')
    checks = {c.name: c for c in manager.verify([repo])}
    assert "git sha1" in checks[f"{REPO_ID}/unet/config.json"].problem


def test_verify_compares_with_the_hash_recorded_at_download(tiny_cached):
    """A blob swapped for another self-consistent one (right name for its content) still fails."""
    repo = tiny_cached.weight_repo()
    manager.download([repo])
    link = tiny_cached.snapshot / "unet/diffusion.safetensors"
    other = lay_out(tiny_cached.folder.parent, "test-org/other", {"x.safetensors": b"other weights"}, ref=None)
    link.unlink()
    link.symlink_to(other.blobs["x.safetensors"])
    bad = [c for c in manager.verify([repo]) if not c.ok]
    assert [c.name for c in bad] == [f"{REPO_ID}/unet/diffusion.safetensors"]


def test_verify_names_a_missing_file(tiny_cached):
    repo = WeightRepo(REPO_ID, tiny_cached.weight_repo().files + (WeightFile("vae/model.bin", 7),), "mit")
    bad = [c for c in manager.verify([repo]) if not c.ok]
    assert [(c.name, c.problem) for c in bad] == [(f"{REPO_ID}/vae/model.bin", "missing")]


def test_remove_deletes_cached_revisions_pins_and_hashes(tiny_cached, hub_cache):
    keep = lay_out(hub_cache, "test-org/keep", {"k.safetensors": b"keep me"})
    repo = tiny_cached.weight_repo()
    manager.download([repo])
    freed = manager.remove([repo])
    assert freed >= sum(len(d) for d in FILES.values())
    assert not tiny_cached.folder.exists()
    assert REPO_ID not in hub.read_pins() and REPO_ID not in hub.read_hashes()
    assert not manager.status(repo).ready
    assert manager.status(keep.weight_repo()).ready  # other repos untouched
    assert manager.remove([repo]) == 0  # nothing left: no error


def test_free_disk_check_refuses_before_any_download(hub_cache, monkeypatch):
    repo = WeightRepo(REPO_ID, (WeightFile("unet/diffusion.safetensors", 3 * 10**9),), "mit")
    fetched = []
    monkeypatch.setattr(hub, "offline", lambda: False)
    monkeypatch.setattr(hub, "fetch", lambda *a, **k: fetched.append(a))
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(manager.shutil, "disk_usage", lambda path: Usage(10**12, 10**12 - 2 * 10**9, 2 * 10**9))
    with pytest.raises(EngineError, match=r"needs 3\.5\d GB .* 2\.00 GB free"):
        manager.download([repo])
    assert fetched == []


def test_download_fetches_missing_files_then_pins_and_records(hub_cache, monkeypatch):
    """The Hub side replaced by what a download leaves in the cache; everything after it is real."""
    repo = WeightRepo(REPO_ID, tuple(WeightFile(p, len(d)) for p, d in FILES.items()), "mit")
    calls = []

    def fetch(repo_id, paths, revision, cache, tqdm_class):
        calls.append((repo_id, sorted(paths), revision))
        return lay_out(cache, repo_id, FILES).snapshot

    monkeypatch.setattr(hub, "offline", lambda: False)
    monkeypatch.setattr(hub, "fetch", fetch)
    seen = []
    folders = manager.download([repo], progress=lambda f, stage: seen.append((f, stage)))
    assert calls == [(REPO_ID, sorted(FILES), None)]
    commit = folders[REPO_ID].name
    assert hub.read_pins()[REPO_ID] == commit and seen[-1] == (1.0, "download")
    assert all(c.ok for c in manager.verify([repo]))


def lipsync_models(*args: str, weights: tuple[WeightRepo, ...], cache: Path, home: Path, env: dict | None = None):
    """`lipsync models ...` in a fresh interpreter, with a tiny engine registered first."""
    boot = (
        "import sys, types\n"
        "from lipsync import engines\n"
        "from lipsync.engines.base import Availability, EngineSpec\n"
        "from lipsync.models import WeightFile, WeightRepo\n"
        "m = types.ModuleType('tiny_engine')\n"
        f"m.SPEC = EngineSpec(name='tiny', title='tiny', description='', modes=frozenset(), options=frozenset(),"
        f" weights={weights!r}, code_licence='MIT')\n"
        "m.availability = lambda: Availability('ready')\n"
        "sys.modules['tiny_engine'] = m\n"
        "engines.KNOWN_ENGINES['tiny'] = 'tiny_engine'\n"
        "from lipsync.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    env = {**os.environ, "LIPSYNC_HOME": str(home), "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-c", boot, "models", *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=120)


def test_cli_list_download_verify_remove(tiny_cached, hub_cache, lipsync_home):
    repo = tiny_cached.weight_repo("creativeml-openrail-m")
    run = lambda *a: lipsync_models(*a, weights=(repo,), cache=hub_cache, home=lipsync_home)  # noqa: E731
    res = run("list")
    assert res.returncode == 0, res.stderr
    assert "builtin: ready" in res.stdout and "tiny: ready" in res.stdout and "creativeml-openrail-m" in res.stdout
    res = run("download", "tiny")
    assert res.returncode == 0 and f"ready at commit {tiny_cached.commit}" in res.stdout, res.stderr
    res = run("verify", "tiny")
    assert res.returncode == 0 and res.stdout.count("ok: ") == 2, res.stderr
    tiny_cached.blobs["unet/diffusion.safetensors"].write_bytes(b"truncated")
    res = run("verify")
    assert res.returncode == 1 and "FAILED: test-org/tiny-weights/unet/diffusion.safetensors" in res.stderr
    assert "Traceback" not in res.stderr
    res = run("remove", "tiny")
    assert res.returncode == 0 and not tiny_cached.folder.exists(), res.stderr
    res = run("download", "tiny")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "lipsync models download tiny" in res.stderr
    res = run("download", "nosuch")
    assert res.returncode == 1 and "unknown engine" in res.stderr and "Traceback" not in res.stderr
    res = run("download", "tiny", "--revision", "other/repo=abc")
    assert res.returncode == 1 and "revision" in res.stderr and "Traceback" not in res.stderr


def test_unreachable_hub_gives_the_offline_line(hub_cache, lipsync_home):
    """Not flagged offline, but no network: the real snapshot_download fails to connect, same one line."""
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    repo = WeightRepo(REPO_ID, (WeightFile("unet/diffusion.safetensors", 10),), "mit")
    code = ("import sys\nfrom lipsync.models import WeightFile, WeightRepo, manager\n"
            "from lipsync.errors import EngineError\n"
            f"try:\n    manager.download([{repo!r}], engine='tiny')\n"
            "except EngineError as e:\n    print(e, file=sys.stderr); sys.exit(1)\n")
    env = {**os.environ, "LIPSYNC_HOME": str(lipsync_home), "HF_HUB_CACHE": str(hub_cache), "HF_HUB_OFFLINE": "0",
           "HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HUB_ETAG_TIMEOUT": "2", "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert f"{REPO_ID}/unet/diffusion.safetensors" in res.stderr and "lipsync models download tiny" in res.stderr


def test_cli_download_from_a_hub_resumes_a_broken_transfer_and_pins(hub_cache, lipsync_home):
    """The real download path (snapshot_download over HTTP) against a local server that drops the first
    transfer of the weights halfway: the client resumes with a Range request, then pin and hashes are kept."""
    # over huggingface_hub's 10 MiB read chunk, so whole chunks arrive before the break
    big = {"unet/diffusion.safetensors": os.urandom(24 * 2**20), "unet/config.json": FILES["unet/config.json"]}
    repo = WeightRepo(REPO_ID, tuple(WeightFile(p, len(d)) for p, d in big.items()), "mit")
    with FakeHub(REPO_ID, big, break_once=("unet/diffusion.safetensors",)) as fake:
        res = lipsync_models("download", "tiny", weights=(repo,), cache=hub_cache, home=lipsync_home,
                             env={"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": fake.url, "HF_HUB_DISABLE_XET": "1"})
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    gets = [r for p, r in fake.ranges if p == "unet/diffusion.safetensors"]
    assert len(gets) == 2 and gets[0] == "" and gets[1].startswith("bytes="), fake.ranges
    resumed_at = int(gets[1][6:].rstrip("-"))
    assert 0 < resumed_at <= len(big["unet/diffusion.safetensors"]) // 2
    assert hub.read_pins(lipsync_home)[REPO_ID] == fake.commit
    state = manager.status(repo, lipsync_home)
    assert state.ready and all(f.local.read_bytes() == big[f.file.path] for f in state.files)
    assert all(c.ok for c in manager.verify([repo], lipsync_home))
    assert hub.read_hashes(lipsync_home)[REPO_ID]["unet/diffusion.safetensors"] == \
        __import__("hashlib").sha256(big["unet/diffusion.safetensors"]).hexdigest()


def test_download_problems_are_named_and_network_errors_fall_back_to_the_offline_line():
    import errno

    import httpx2
    from huggingface_hub.utils import LocalEntryNotFoundError

    assert hub.download_problem(httpx2.ConnectError("refused"), REPO_ID, None) is None
    assert hub.download_problem(LocalEntryNotFoundError("offline"), REPO_ID, None) is None
    disk = hub.download_problem(OSError(errno.ENOSPC, "No space left on device", "/cache/blob"), REPO_ID, None)
    assert disk == f"{REPO_ID}: download failed: No space left on device: /cache/blob"


def test_a_cache_copied_without_its_symlinks_still_loads(tiny_cached):
    """A copy that turned each snapshot symlink into a text file naming its blob (a tool that does not
    keep symlinks; git with core.symlinks=false), made read-only: loaded through links of our own,
    without writing into the cache."""
    for path in FILES:
        link = tiny_cached.snapshot / path
        target = os.readlink(link)
        link.unlink()
        link.write_text(target)
    for folder in [tiny_cached.folder, *tiny_cached.folder.rglob("*")]:
        if folder.is_dir():
            folder.chmod(0o555)
    try:
        folder = hub.local_folder(tiny_cached.weight_repo())
        for path, data in FILES.items():
            assert (folder / path).read_bytes() == data
        assert tiny_cached.snapshot not in folder.parents  # a view of our own, not the cache
    finally:
        for folder in [tiny_cached.folder, *tiny_cached.folder.rglob("*")]:
            if folder.is_dir():
                folder.chmod(0o755)
