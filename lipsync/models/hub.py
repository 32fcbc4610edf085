"""The one module that touches the Hugging Face Hub.

Files go into the standard hub cache (`HF_HOME` / `HF_HUB_CACHE`), so weights another tool already
downloaded, or a test laid out, count as downloaded. The commit each repo resolved to at its first
download is recorded in `<LIPSYNC_HOME>/models/pins.json` and loaded exactly afterwards (reproducible
renders); `revision=` pins one explicitly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

from .. import config
from .spec import WeightRepo


def pins_path(home: Optional[Path] = None) -> Path:
    return config.private_dir((home or config.home()) / "models") / "pins.json"


def read_pins(home: Optional[Path] = None) -> dict[str, str]:
    path = pins_path(home)
    try:
        pins = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError:  # a hand-edited, broken file: start over rather than refuse to load
        return {}
    return {k: v for k, v in pins.items() if isinstance(k, str) and isinstance(v, str)}


def write_pin(repo_id: str, commit: str, home: Optional[Path] = None) -> None:
    path = pins_path(home)
    pins = read_pins(home)
    pins[repo_id] = commit
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, config.PRIVATE_FILE)
    with os.fdopen(fd, "w") as f:
        json.dump(pins, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def revision_for(repo: WeightRepo, home: Optional[Path] = None) -> Optional[str]:
    """The commit to load: the recorded pin, else the engine's declared one, else None (= main)."""
    return read_pins(home).get(repo.repo_id) or repo.revision


def local_folder(repo: WeightRepo, *, local_files_only: bool = True, home: Optional[Path] = None,
                 revision: Optional[str] = None) -> Path:
    """The snapshot folder holding `repo`'s declared files, downloading what is missing unless
    `local_files_only`. Raises huggingface_hub's LocalEntryNotFoundError when files are missing offline."""
    from huggingface_hub import snapshot_download

    wanted = revision or revision_for(repo, home)
    folder = Path(snapshot_download(repo.repo_id, revision=wanted, allow_patterns=[f.path for f in repo.files],
                                    local_files_only=local_files_only))
    missing = [f.path for f in repo.files if not (folder / f.path).is_file()]
    if missing:
        from huggingface_hub.errors import LocalEntryNotFoundError

        raise LocalEntryNotFoundError(f"{repo.repo_id}: missing {', '.join(missing)}")
    if repo.repo_id not in read_pins(home):  # first resolution: the snapshot folder is named after its commit
        write_pin(repo.repo_id, folder.name, home)
    return folder
