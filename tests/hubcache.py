"""Lay out a Hugging Face hub cache by hand, exactly as huggingface_hub would after a download:

    <cache>/models--org--name/blobs/<etag>                      the content
    <cache>/models--org--name/snapshots/<commit>/<path>          symlink → ../../blobs/<etag>
    <cache>/models--org--name/refs/main                          the commit

The ETag is the content's sha256 for LFS files and its git blob sha1 for small files kept in git, as the
Hub declares them. Tests for every neural engine use this to build a pre-populated cache offline.
"""

from __future__ import annotations

import hashlib
import json
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


class FakeHub:
    """A local HTTP server answering the few Hub endpoints a download uses (repo info, file tree, HEAD and
    GET of `resolve/`), for `HF_ENDPOINT` in a child process. `break_once` paths drop the connection
    halfway through their first transfer, to check the client resumes with a Range request."""

    def __init__(self, repo_id: str, files: Mapping[str, bytes], *, commit: Optional[str] = None,
                 break_once: tuple[str, ...] = ()):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import unquote, urlsplit

        self.repo_id, self.files = repo_id, dict(files)
        self.commit = commit or commit_id("fakehub" + repo_id)
        self.ranges: list[tuple[str, str]] = []  # (path, Range header) of each GET
        broken = set(break_once)
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _json(self, data) -> None:
                body = json.dumps(data).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _file(self, head: bool) -> None:
                prefix = f"/{hub.repo_id}/resolve/"
                path = unquote(urlsplit(self.path).path)
                rev, _, name = path[len(prefix):].partition("/") if path.startswith(prefix) else ("", "", "")
                if rev not in (hub.commit, "main") or name not in hub.files:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = hub.files[name]
                tag = etag(name, data)
                start = 0
                rng = self.headers.get("Range")
                if not head:
                    hub.ranges.append((name, rng or ""))
                if rng and rng.startswith("bytes="):
                    start = int(rng[6:].split("-")[0])
                self.send_response(206 if start else 200)
                self.send_header("X-Repo-Commit", hub.commit)
                self.send_header("ETag", f'"{tag}"')
                if len(tag) == 64:
                    self.send_header("X-Linked-Etag", f'"{tag}"')
                    self.send_header("X-Linked-Size", str(len(data)))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                if head:
                    return
                if name in broken and not start:
                    broken.discard(name)
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data[start:])

            def do_HEAD(self):
                self._file(head=True)

            def do_GET(self):
                path = unquote(urlsplit(self.path).path)
                api = f"/api/models/{hub.repo_id}/"
                if path.startswith(api + "revision/"):
                    self._json({"id": hub.repo_id, "sha": hub.commit,
                                "siblings": [{"rfilename": p} for p in hub.files]})
                elif path.startswith(api + "tree/"):
                    self._json([{"type": "file", "path": p, "size": len(d), "oid": git_blob_sha1(d),
                                 **({"lfs": {"oid": t, "size": len(d), "pointerSize": 134}} if len(t := etag(p, d)) == 64
                                    else {})} for p, d in hub.files.items()])
                else:
                    self._file(head=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeHub":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
