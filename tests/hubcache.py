"""Lay out a Hugging Face hub cache by hand, exactly as huggingface_hub would after a download:

    <cache>/models--org--name/blobs/<etag>                      the content
    <cache>/models--org--name/snapshots/<commit>/<path>          symlink → ../../blobs/<etag>
    <cache>/models--org--name/refs/main                          the commit

The ETag is the content's sha256 for LFS files and its git blob sha1 for small files kept in git, as the
Hub declares them. Tests for every neural engine use this to build a pre-populated cache offline.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

from lipsync.models import WeightFile, WeightRepo


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def etag(path: str, data: bytes, lfs: Optional[bool] = None) -> str:
    """What the Hub declares: LFS for weights (and anything over 10 MB), git for small text files."""
    if lfs is None:
        lfs = not path.endswith((".json", ".txt", ".md")) or len(data) > 10 * 2**20
    return hashlib.sha256(data).hexdigest() if lfs else git_blob_sha1(data)


def commit_id(seed: str) -> str:
    return hashlib.sha1(seed.encode()).hexdigest()


@dataclass
class CachedRepo:
    repo_id: str
    folder: Path  # models--org--name
    commit: str
    snapshot: Path  # snapshots/<commit>
    blobs: dict[str, Path]  # path in the repo → its blob

    def weight_repo(self, licence: str = "mit", sizes: Optional[Mapping[str, int]] = None) -> WeightRepo:
        """A WeightRepo declaring these files (sizes: override the declared size of some)."""
        sizes = sizes or {}
        return WeightRepo(self.repo_id, tuple(WeightFile(p, sizes.get(p, b.stat().st_size))
                                              for p, b in self.blobs.items()), licence)


def lay_out(cache: Path, repo_id: str, files: Mapping[str, bytes], *, commit: Optional[str] = None,
            ref: Optional[str] = "main", lfs: Optional[Mapping[str, bool]] = None) -> CachedRepo:
    """Put `files` ({path in repo: content}) into `cache` under `repo_id` at `commit` (default: derived
    from the repo id and contents), and point `refs/<ref>` at it. Calling it again adds a commit."""
    lfs = lfs or {}
    commit = commit or commit_id(repo_id + "".join(sorted(files)) + "".join(hashlib.sha256(d).hexdigest()
                                                                           for d in files.values()))
    folder = Path(cache) / ("models--" + repo_id.replace("/", "--"))
    snapshot = folder / "snapshots" / commit
    blobs = {}
    for path, data in files.items():
        blob = folder / "blobs" / etag(path, data, lfs.get(path))
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / path
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(blob, link.parent))
        blobs[path] = blob
    if ref:
        (folder / "refs").mkdir(parents=True, exist_ok=True)
        (folder / "refs" / ref).write_text(commit)  # no newline, as huggingface_hub writes it
    return CachedRepo(repo_id, folder, commit, snapshot, blobs)
