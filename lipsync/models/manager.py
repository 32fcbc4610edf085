"""The model manager: which declared weight files are in the hub cache, downloading the missing ones
(free-disk check first, commit pinned, hashes recorded), verifying them and removing them.

Plain data in, plain data out: engines turn a `RepoState` into their `Availability`; the CLI and UI print
it. Everything that touches huggingface_hub goes through `hub`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional

from ..errors import EngineError
from . import hub
from .spec import WeightFile, WeightRepo

# Room left free beyond the files themselves (the partial download, the filesystem's own needs).
DISK_MARGIN = 512 * 2**20
GB = 1e9

# (fraction 0..1, stage name) → None, the engines' Progress signature; stage is "download".
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class FileState:
    repo_id: str
    file: WeightFile
    local: Optional[Path]  # the snapshot file in the cache, None when missing

    @property
    def present(self) -> bool:
        return self.local is not None

    @property
    def name(self) -> str:
        return f"{self.repo_id}/{self.file.path}"


@dataclass(frozen=True)
class RepoState:
    repo: WeightRepo
    revision: Optional[str]  # what was looked up: the pin, the declared commit, or None (= main)
    files: tuple[FileState, ...]

    @property
    def missing(self) -> tuple[FileState, ...]:
        return tuple(f for f in self.files if not f.present)

    @property
    def missing_bytes(self) -> int:
        return sum(f.file.size for f in self.missing)

    @property
    def ready(self) -> bool:
        return not self.missing


@dataclass(frozen=True)
class FileCheck:
    name: str  # repo_id/path
    ok: bool
    problem: str = ""


def status(repo: WeightRepo, home: Optional[Path] = None, *, cache: Optional[Path] = None) -> RepoState:
    """Which of `repo`'s files are in the hub cache at the revision we load. No network."""
    revision = hub.revision_for(repo, home)
    files = tuple(FileState(repo.repo_id, f, hub.cached_file(repo.repo_id, f.path, revision, cache))
                  for f in repo.files)
    return RepoState(repo, revision, files)


def missing(repos: Iterable[WeightRepo], home: Optional[Path] = None, *,
            cache: Optional[Path] = None) -> list[FileState]:
    return [f for repo in repos for f in status(repo, home, cache=cache).missing]


def size_text(n: int) -> str:
    if n >= 0.1 * GB:
        return f"{n / GB:.2f} GB"
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def offline_message(engine: Optional[str], files: Iterable[FileState]) -> str:
    names = ", ".join(f.name for f in files)
    engine = engine or "ENGINE"
    return (f"{engine}: weights not downloaded ({names}); run `lipsync models download {engine}` with network "
            "access (the builtin engine works offline)")


def check_disk(cache: Path, need: int) -> None:
    """Refuse before downloading when the cache's disk cannot hold `need` bytes plus a margin."""
    folder = Path(cache)
    while not folder.exists() and folder != folder.parent:  # the cache may not exist yet: ask its disk
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if need + DISK_MARGIN > free:
        raise EngineError(f"not enough disk space in {cache}: the download needs {(need + DISK_MARGIN) / GB:.2f} GB "
                          f"({need / GB:.2f} GB of weights + {DISK_MARGIN / GB:.2f} GB margin), "
                          f"{free / GB:.2f} GB free")


def _tqdm_reporting(progress: Progress, total: int):
    """A tqdm class for snapshot_download that reports its byte bars to `progress` instead of a terminal."""
    from tqdm.auto import tqdm

    class Reporting(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["file"] = open(os.devnull, "w")  # noqa: SIM115 - closed with the bar
            kwargs.pop("disable", None)
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            out = super().update(n)
            if self.unit == "B" and total:
                progress(min(1.0, self.n / total), "download")
            return out

        def close(self):
            fp = self.fp
            super().close()
            fp.close()

    return Reporting


def _record(repo: WeightRepo, state: RepoState, home: Optional[Path], cache: Optional[Path], *, pin: bool) -> None:
    """Pin the commit the files resolved to (at the first download, or when asked) and record the hash
    the Hub declared for each file (the cache names blobs after their ETag)."""
    commit = next((hub.snapshot_commit(f.local, repo.repo_id, cache) for f in state.files if f.local), None)
    if commit and hub.COMMIT_RE.fullmatch(commit) and (pin or repo.repo_id not in hub.read_pins(home)):
        hub.write_pin(repo.repo_id, commit, home)
    hashes = {f.file.path: h for f in state.files if f.local and (h := hub.declared_hash(f.local))}
    if hashes:
        hub.write_hashes(repo.repo_id, hashes, home)


def download(repos: Iterable[WeightRepo], home: Optional[Path] = None, *,
             revision: Optional[Mapping[str, str]] = None, progress: Optional[Progress] = None,
             engine: Optional[str] = None, cache: Optional[Path] = None) -> dict[str, Path]:
    """Make every declared file of `repos` present in the hub cache, downloading what is missing, and
    return each repo's snapshot folder. `revision` maps repo ids to a commit/branch/tag to pin explicitly.
    Files already cached need no network. Offline or unreachable Hub → EngineError naming what to run."""
    revision = dict(revision or {})
    repos = list(repos)
    cache = cache or hub.cache_dir()
    states = {}
    for repo in repos:
        if repo.repo_id in revision:
            # an explicit revision is what we look up, and pin, whatever was pinned before
            states[repo.repo_id] = RepoState(repo, revision[repo.repo_id], tuple(
                FileState(repo.repo_id, f, hub.cached_file(repo.repo_id, f.path, revision[repo.repo_id], cache))
                for f in repo.files))
        else:
            states[repo.repo_id] = status(repo, home, cache=cache)
    todo = [s for s in states.values() if not s.ready]
    if todo:
        lacking = [f for s in todo for f in s.missing]
        if hub.offline():
            raise EngineError(offline_message(engine, lacking))
        check_disk(cache, sum(s.missing_bytes for s in todo))
        total = sum(s.missing_bytes for s in todo)
        tqdm_class = _tqdm_reporting(progress, total) if progress else None
        for i, s in enumerate(todo):
            try:
                hub.fetch(s.repo.repo_id, [f.path for f in s.repo.files], s.revision, cache, tqdm_class)
            except Exception as exc:  # noqa: BLE001 - huggingface_hub raises many kinds; say what to do
                still_missing = [f for t in todo[i:] for f in t.missing]
                raise EngineError(_fetch_error(engine, s, exc, still_missing)) from None
            states[s.repo.repo_id] = _restate(s, cache)
            if not states[s.repo.repo_id].ready:
                raise EngineError(f"{s.repo.repo_id}: the Hub has no "
                                  f"{', '.join(f.file.path for f in states[s.repo.repo_id].missing)} at "
                                  f"revision {s.revision or 'main'}")
        if progress:
            progress(1.0, "download")
    folders = {}
    for repo in repos:
        state = states[repo.repo_id]
        _record(repo, state, home, cache, pin=repo.repo_id in revision)
        folders[repo.repo_id] = snapshot_folder(state) or hub.repo_folder(repo.repo_id, cache)
    return folders


def snapshot_folder(state: RepoState) -> Optional[Path]:
    """The folder holding the repo's files at the looked-up revision (None when none is cached)."""
    for f in state.files:
        if f.local is not None:
            folder = f.local
            for _ in Path(f.file.path).parts:  # the file's path inside the repo may have folders
                folder = folder.parent
            return folder
    return None


def _restate(state: RepoState, cache: Path) -> RepoState:
    """Look the files up again after a download, at the commit it resolved to (refs/<branch> now exist)."""
    repo = state.repo
    return RepoState(repo, state.revision, tuple(
        FileState(repo.repo_id, f, hub.cached_file(repo.repo_id, f.path, state.revision, cache)) for f in repo.files))


def _fetch_error(engine: Optional[str], state: RepoState, exc: Exception, still_missing: list[FileState]) -> str:
    problem = hub.download_problem(exc, state.repo.repo_id, state.revision)
    return problem or offline_message(engine, still_missing)


def _file_hash(path: Path, expected: str) -> str:
    """sha256 of the content (LFS files), or the git blob sha1 (small files the Hub keeps in git)."""
    if len(expected) == 64:
        digest = hashlib.sha256()
    else:
        digest = hashlib.sha1()
        digest.update(b"blob %d\0" % os.path.getsize(path))
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(repos: Iterable[WeightRepo], home: Optional[Path] = None, *,
           cache: Optional[Path] = None) -> list[FileCheck]:
    """Re-hash every cached file of `repos` against the hash the Hub declared at download time (recorded
    in hashes.json; else the blob's name in the cache, which is its ETag)."""
    checks = []
    for repo in repos:
        recorded = hub.read_hashes(home).get(repo.repo_id, {})
        for f in status(repo, home, cache=cache).files:
            if f.local is None:
                checks.append(FileCheck(f.name, False, "missing"))
                continue
            expected = recorded.get(f.file.path) or hub.declared_hash(f.local)
            if expected is None:
                checks.append(FileCheck(f.name, False, "no hash recorded from the Hub; download it again"))
                continue
            blob_name = hub.declared_hash(f.local)
            got = _file_hash(f.local, expected)
            if got != expected:
                kind = "sha256" if len(expected) == 64 else "git sha1"
                checks.append(FileCheck(f.name, False, f"{kind} {got[:12]}… differs from the Hub's {expected[:12]}…"))
            elif blob_name and blob_name != expected:
                checks.append(FileCheck(f.name, False, "the cached blob is not the one that was downloaded"))
            else:
                checks.append(FileCheck(f.name, True))
    return checks


def remove(repos: Iterable[WeightRepo], home: Optional[Path] = None, *, cache: Optional[Path] = None) -> int:
    """Delete every cached revision of `repos` and their pins and hashes; returns the bytes freed."""
    freed = 0
    for repo in repos:
        freed += hub.delete_cached(repo.repo_id, cache)
        hub.remove_pin(repo.repo_id, home)
        hub.remove_hashes(repo.repo_id, home)
    return freed
