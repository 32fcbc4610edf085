"""The one module that touches the Hugging Face Hub (and huggingface_hub's cache).

Files go into the standard hub cache (`HF_HOME` / `HF_HUB_CACHE`), so weights another tool already
downloaded, or a test laid out, count as downloaded. The commit each repo resolved to at its first
download is recorded in `<LIPSYNC_HOME>/models/pins.json` and loaded exactly afterwards (reproducible
renders); `revision=` pins one explicitly. The hash the Hub declared for each file at download time is
recorded in `<LIPSYNC_HOME>/models/hashes.json`, for `lipsync models verify`.

huggingface_hub reads `HF_HUB_CACHE` and `HF_HUB_OFFLINE` once, at import; the functions here read them
at each call and pass the cache folder explicitly, so a setting made after import is honoured.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Optional

from .. import config
from .spec import WeightRepo

_TRUE = {"1", "ON", "YES", "TRUE"}
COMMIT_RE = re.compile(r"[0-9a-f]{40}")


def cache_dir() -> Path:
    """The hub cache folder, as huggingface_hub would pick it from the environment now."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.path.expandvars(os.environ["HF_HUB_CACHE"])).expanduser()
    if os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(os.path.expandvars(os.environ["HUGGINGFACE_HUB_CACHE"])).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.path.expandvars(os.environ["HF_HOME"])).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


def offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set now, or was when huggingface_hub was imported."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    if value.upper() in _TRUE:
        return True
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


# ---- records in LIPSYNC_HOME (0600 files in a 0700 folder) ----

def pins_path(home: Optional[Path] = None) -> Path:
    return config.private_dir((home or config.home()) / "models") / "pins.json"


def hashes_path(home: Optional[Path] = None) -> Path:
    return config.private_dir((home or config.home()) / "models") / "hashes.json"


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError:  # a hand-edited, broken file: start over rather than refuse to load
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, config.PRIVATE_FILE)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def read_pins(home: Optional[Path] = None) -> dict[str, str]:
    pins = _read_json(pins_path(home))
    return {k: v for k, v in pins.items() if isinstance(k, str) and isinstance(v, str)}


def write_pin(repo_id: str, commit: str, home: Optional[Path] = None) -> None:
    pins = read_pins(home)
    pins[repo_id] = commit
    _write_json(pins_path(home), pins)


def remove_pin(repo_id: str, home: Optional[Path] = None) -> None:
    pins = read_pins(home)
    if pins.pop(repo_id, None) is not None:
        _write_json(pins_path(home), pins)


def read_hashes(home: Optional[Path] = None) -> dict[str, dict[str, str]]:
    """{repo_id: {path: hash}}: sha256 (64 hex) for LFS files, git blob sha1 (40 hex) for the others."""
    data = _read_json(hashes_path(home))
    return {repo: {p: h for p, h in files.items() if isinstance(p, str) and isinstance(h, str)}
            for repo, files in data.items() if isinstance(repo, str) and isinstance(files, dict)}


def write_hashes(repo_id: str, hashes: dict[str, str], home: Optional[Path] = None) -> None:
    data = read_hashes(home)
    data[repo_id] = {**data.get(repo_id, {}), **hashes}
    _write_json(hashes_path(home), data)


def remove_hashes(repo_id: str, home: Optional[Path] = None) -> None:
    data = read_hashes(home)
    if data.pop(repo_id, None) is not None:
        _write_json(hashes_path(home), data)


def revision_for(repo: WeightRepo, home: Optional[Path] = None) -> Optional[str]:
    """The commit to load: the recorded pin, else the engine's declared one, else None (= main)."""
    return read_pins(home).get(repo.repo_id) or repo.revision


# ---- the cache ----

def repo_folder(repo_id: str, cache: Optional[Path] = None) -> Path:
    """`models--org--name` in the cache (huggingface_hub's documented layout)."""
    from huggingface_hub.file_download import repo_folder_name

    return (cache or cache_dir()) / repo_folder_name(repo_id=repo_id, repo_type="model")


def cached_file(repo_id: str, path: str, revision: Optional[str], cache: Optional[Path] = None) -> Optional[Path]:
    """The snapshot file for `path` at `revision` (a commit, branch or tag; None = main) if it is in the
    cache, else None. Never touches the network."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, path, cache_dir=str(cache or cache_dir()), revision=revision)
    return Path(found) if isinstance(found, str) and os.path.isfile(found) else None


def snapshot_commit(snapshot_file: Path, repo_id: str, cache: Optional[Path] = None) -> Optional[str]:
    """The commit a snapshot file belongs to (its folder under `snapshots/`)."""
    try:
        rel = Path(os.path.abspath(snapshot_file)).relative_to(os.path.abspath(repo_folder(repo_id, cache) / "snapshots"))
    except ValueError:
        return None
    return rel.parts[0] if rel.parts else None


def declared_hash(snapshot_file: Path) -> Optional[str]:
    """The hash the Hub sent (its ETag) for a cached file: the cache names each blob after it, and the
    snapshot entry links to `blobs/<etag>`. None where the snapshot holds a copy (no symlinks)."""
    if not os.path.islink(snapshot_file):
        return None
    name = os.path.basename(os.readlink(snapshot_file))
    return name if re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", name) else None


def fetch(repo_id: str, paths: list[str], revision: Optional[str], cache: Optional[Path] = None,
          tqdm_class=None) -> Path:
    """Download `paths` of `repo_id` at `revision` into the cache (resuming partial files) and return the
    snapshot folder, named after the commit the revision resolved to."""
    from huggingface_hub import snapshot_download

    # allow_patterns are fnmatch patterns: escape the characters that would make a path match others
    patterns = [re.sub(r"([\[\]*?])", r"[\1]", p) for p in paths]
    return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns,
                                  cache_dir=str(cache or cache_dir()), tqdm_class=tqdm_class))


def download_problem(exc: Exception, repo_id: str, revision: Optional[str]) -> Optional[str]:
    """What went wrong in `fetch`, in one line; None when the Hub could not be reached (no network, Hub down)."""
    from huggingface_hub.utils import (GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                       RevisionNotFoundError)

    if isinstance(exc, RevisionNotFoundError):
        return f"{repo_id}: the Hub has no revision {revision!r}"
    if isinstance(exc, GatedRepoError):
        return f"{repo_id}: the repo is gated; accept its terms on the Hub and log in (`hf auth login`)"
    if isinstance(exc, RepositoryNotFoundError):
        return f"{repo_id}: no such repo on the Hub (or it is private)"
    if isinstance(exc, (LocalEntryNotFoundError, ConnectionError, TimeoutError)):
        return None
    # the HTTP client's transport errors (httpx2 in huggingface_hub 1.x+, httpx or requests before)
    if any(c.__name__ in ("TransportError", "TimeoutException", "RequestException") for c in type(exc).__mro__):
        return None
    if isinstance(exc, OSError) and exc.errno is not None:  # a local disk problem: full, read-only, ...
        return f"{repo_id}: download failed: {exc.strerror}: {exc.filename or ''}".rstrip(": ")
    if isinstance(exc, OSError):  # httpx's and huggingface_hub's network errors are OSErrors without errno
        return None
    return f"{repo_id}: download failed: {type(exc).__name__}: {exc}"


def delete_cached(repo_id: str, cache: Optional[Path] = None) -> int:
    """Delete every cached revision of `repo_id`; returns the bytes freed (0 when nothing was cached)."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.utils import CacheNotFound  # (also in .errors from 0.25 on; .utils in every version)

    folder = cache or cache_dir()
    try:
        info = scan_cache_dir(str(folder))
    except CacheNotFound:
        return 0
    commits = [rev.commit_hash for repo in info.repos if repo.repo_id == repo_id and repo.repo_type == "model"
               for rev in repo.revisions]
    if not commits:
        return 0
    strategy = info.delete_revisions(*commits)
    strategy.execute()
    return strategy.expected_freed_size


def local_folder(repo: WeightRepo, *, local_files_only: bool = True, home: Optional[Path] = None,
                 revision: Optional[str] = None, cache: Optional[Path] = None) -> Path:
    """The snapshot folder holding `repo`'s declared files, downloading what is missing unless
    `local_files_only`. Raises huggingface_hub's LocalEntryNotFoundError when files are missing offline."""
    from huggingface_hub import snapshot_download

    wanted = revision or revision_for(repo, home)
    folder = Path(snapshot_download(repo.repo_id, revision=wanted, allow_patterns=[f.path for f in repo.files],
                                    local_files_only=local_files_only, cache_dir=str(cache or cache_dir())))
    missing = [f.path for f in repo.files if not (folder / f.path).is_file()]
    if missing:
        from huggingface_hub.utils import LocalEntryNotFoundError

        raise LocalEntryNotFoundError(f"{repo.repo_id}: missing {', '.join(missing)}")
    if repo.repo_id not in read_pins(home):  # first resolution: the snapshot folder is named after its commit
        write_pin(repo.repo_id, folder.name, home)
    return _followed(folder, repo)


_POINTER = re.compile(r"(?:\.\./)+blobs/[0-9a-f]{40,64}")


def _pointer_target(path: Path) -> Optional[Path]:
    """The blob a snapshot entry names when its symlink became a small text file holding the link's target
    (a cache copied by a tool that does not keep symlinks, or checked out by git with core.symlinks=false)."""
    if path.is_symlink() or not path.is_file() or path.stat().st_size > 200:
        return None
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not _POINTER.fullmatch(text):
        return None
    target = (path.parent / text).resolve()
    return target if target.is_file() else None


def _followed(folder: Path, repo: WeightRepo) -> Path:
    """`folder` itself, or, when its entries are such text pointers, a private folder of real symlinks to
    the blobs (the cache may be read-only, so it is never repaired in place)."""
    targets = {f.path: _pointer_target(folder / f.path) for f in repo.files}
    if not any(targets.values()):
        return folder
    view = config.private_dir(config.cache_dir() / "hub-views" / f"{repo.repo_id.replace('/', '--')}--{folder.name}")
    for name, target in targets.items():
        link = view / name
        link.parent.mkdir(parents=True, exist_ok=True)
        real = target or (folder / name).resolve()
        if link.is_symlink() and Path(os.readlink(link)) == real:
            continue
        link.unlink(missing_ok=True)
        link.symlink_to(real)
    return view
