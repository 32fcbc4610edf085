"""Safe reading of weight files and the architecture checks MuseTalk 1.5 needs.

safetensors files hold tensors only. Pickles (`.pth`, `.bin`) are read with `torch.load(weights_only=True)`,
which refuses to run code, and must come out as a plain mapping of names to tensors. A config that does not
describe MuseTalk's architecture is refused by name: loading it anyway would give a blurry video, or a
shape error deep inside a render.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

from ...errors import EngineError

UNET_ARCHITECTURE = {
    "in_channels": 8,  # 4 masked-crop latent channels + 4 reference latent channels
    "out_channels": 4,
    "cross_attention_dim": 384,  # whisper-tiny's d_model
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}
VAE_ARCHITECTURE = {"in_channels": 3, "out_channels": 3, "latent_channels": 4}
# 4 encoder layers give the 5 hidden states that, over 10 time steps, make the UNet's 50 context tokens.
WHISPER_ARCHITECTURE = {"d_model": 384, "num_mel_bins": 80, "encoder_layers": 4}
FEATURES_ARCHITECTURE = {"feature_size": 80, "sampling_rate": 16000, "hop_length": 160, "n_samples": 480000}


def read_config(path: Path, label: str) -> dict[str, Any]:
    try:
        config = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise EngineError(f"{label}: cannot read the config ({exc})") from None
    if not isinstance(config, dict):
        raise EngineError(f"{label}: the config is not a JSON object")
    return config


def check_architecture(config: dict[str, Any], expected: dict[str, Any], label: str) -> None:
    """Raise EngineError naming the first field whose value differs from `expected`."""
    for field, want in expected.items():
        got = config.get(field)
        if isinstance(got, tuple):
            got = list(got)
        if got != want:
            raise EngineError(f"{label}: {field} is {got!r}, MuseTalk 1.5 needs {want!r}; "
                              "these are not MuseTalk 1.5's weights")


def read_state_dict(path: Path, label: str) -> dict:
    """The tensors in `path`, by name. Refuses anything that is not a plain name -> tensor mapping."""
    import torch

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError) as exc:
            raise EngineError(f"{label}: not a valid safetensors file ({exc})") from None
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # weights_only refused a global: code or a foreign object
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsupported content"
        raise EngineError(f"{label}: refused to load, the pickle is not a plain state dict ({first})") from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise EngineError(f"{label}: cannot read the weights ({exc})") from None
    if not isinstance(state, dict) or not state:
        raise EngineError(f"{label}: refused to load, the pickle holds a {type(state).__name__}, "
                          "not a state dict of tensors")
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise EngineError(f"{label}: refused to load, entry {bad[0]!r} is not a tensor; "
                          "expected a plain state dict")
    return dict(state)


def load_into(module, state: dict, label: str) -> None:
    """Strict load that replaces `module`'s (possibly meta) tensors by the file's; names what does not fit."""
    try:
        module.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise EngineError(f"{label}: the weights do not fit the config ({' '.join(lines[1:3])[:300]})") from None
