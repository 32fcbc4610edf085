"""Weights an engine declares, as data: which Hub repos and files, their licence and expected size.

Engines put these in `EngineSpec.weights`; the model manager (`lipsync models ...`) and the engine's
availability read them. Nothing here touches the network or imports huggingface_hub.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class WeightFile:
    path: str  # the file's path inside the repo, e.g. "musetalkV15/unet.pth"
    size: int  # expected bytes (shown before a download, and used for the free-disk check)


@dataclass(frozen=True)
class WeightRepo:
    repo_id: str  # "TMElyralab/MuseTalk"
    files: tuple[WeightFile, ...]
    licence: str  # as the model card states it, e.g. "creativeml-openrail-m"
    revision: Optional[str] = None  # a commit to pin by default; None = what `main` resolves to at first download

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)
