"""MuseTalk 1.5 as tensors in, tensors out (FACTS.md sections 3, 4, 6, 7). Knows nothing of frames or faces:
the engine's adapter maps our video to these calls, and `lipsync.models.hub` is the only Hub access.

    pipe = load_pipeline(device="cuda", dtype="float16")
    ctx = pipe.audio_context(audio_16k, n_frames)          # (T, 50, 384)
    out = pipe.generate(crops, ctx[f0:f1])                  # (B, 256, 256, 3) uint8 RGB
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from ...errors import EngineError
from ...models.spec import WeightFile, WeightRepo
from .loading import (FEATURES_ARCHITECTURE, UNET_ARCHITECTURE, VAE_ARCHITECTURE, WHISPER_ARCHITECTURE,
                      check_architecture, load_into, read_config, read_state_dict)
from .weights import MUSETALK, PICKLE_FALLBACK, SD_VAE, UNET_CONFIG, UNET_WEIGHTS, WEIGHTS, WHISPER

SAMPLE_RATE = 16000
PIECE = 30 * SAMPLE_RATE  # whisper encodes 30 s at a time; MuseTalk cuts the audio into pieces from t = 0
AUDIO_FPS = 50  # whisper encoder steps per second
PAD_LEFT = PAD_RIGHT = 2  # MuseTalk's audio_padding_length_left/right
WINDOW = 2 * (PAD_LEFT + PAD_RIGHT + 1)  # 10 encoder steps (200 ms) per video frame
CROP = 256
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
ArrayLike = Union[np.ndarray, torch.Tensor]


def positional_encoding(length: int, d_model: int) -> torch.Tensor:
    """MuseTalk's PositionalEncoding table (musetalk/models/unet.py:12-27), rows 0..length-1, float32."""
    position = torch.arange(0, length, dtype=torch.float).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
    pe = torch.zeros(length, d_model)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe


def window_starts(frames: Sequence[int], fps: int = 25) -> np.ndarray:
    """First encoder step of each frame's window in the left-padded feature array (audio_processor.py:78-83):
    frame f sees the unpadded steps [start - pad, start - pad + 10), pad = 2 * ceil(50 / fps)."""
    multiplier = AUDIO_FPS / int(fps)
    return np.array([math.floor(f * multiplier) for f in frames], dtype=np.int64)


@torch.inference_mode()
def frame_context(features: torch.Tensor, frames: Sequence[int], fps: int = 25) -> torch.Tensor:
    """UNet context of the given frames from `audio_features`' output, (len(frames), 50, 384) in its dtype:
    each frame's 10 steps x 5 states (zeros outside the audio), flattened time-major (token 5 * step +
    state), plus the positional encoding over the 50 tokens (audio_processor.py:68-93, inference.py:200)."""
    fps = int(fps)
    pad = math.ceil(AUDIO_FPS / fps)
    left = pad * PAD_LEFT
    starts = window_starts(frames, fps)
    length = features.shape[0]
    # MuseTalk pads 3x on the right (enough for its own frame count); frames past the audio see zeros.
    right = max(pad * 3 * PAD_RIGHT, int(starts.max(initial=0)) + WINDOW - left - length)
    zeros = features.new_zeros((1, *features.shape[1:]))
    padded = torch.cat([zeros.expand(left, -1, -1), features, zeros.expand(right, -1, -1)], dim=0)
    index = torch.as_tensor(starts, device=features.device)[:, None] + torch.arange(WINDOW, device=features.device)
    windows = padded[index]  # (T, 10, 5, d)
    context = windows.reshape(len(starts), -1, windows.shape[-1])
    pe = positional_encoding(context.shape[1], context.shape[2]).to(context.device, context.dtype)
    return context + pe


class MuseTalkPipeline:
    """The three models and the seams `check.py` calls. Numpy in and out; torch tensors accepted."""

    def __init__(self, unet, vae, encoder, features, device: torch.device, dtype: torch.dtype):
        self.unet, self.vae, self.encoder, self.features = unet, vae, encoder, features
        self.device, self.dtype = device, dtype
        self.scaling = float(vae.config.scaling_factor)  # 0.18215: the sd-vae config has none, diffusers' default
        self.d_model = int(unet.config.cross_attention_dim)

    # ---- audio -> per-frame cross-attention context (FACTS.md section 4)

    @torch.inference_mode()
    def audio_features(self, audio_16k: ArrayLike) -> torch.Tensor:
        """Whisper encoder states of mono 16 kHz audio: (L, 5, 384), L = floor(n / 16000 * 50), model dtype.
        Encoded in 30 s pieces from t = 0, each padded to 30 s by the feature extractor, as MuseTalk does."""
        audio = _numpy(audio_16k).astype(np.float32, copy=False).reshape(-1)
        n = len(audio)
        states = []
        for start in range(0, n, PIECE):
            mel = self.features(audio[start:start + PIECE], sampling_rate=SAMPLE_RATE,
                                return_tensors="pt").input_features
            hidden = self.encoder(mel.to(self.device, self.dtype), output_hidden_states=True).hidden_states
            states.append(torch.stack(hidden, dim=2)[0])  # (1500, 5, 384): embeddings, layers 1-3, LN(layer 4)
        length = math.floor((n / SAMPLE_RATE) * AUDIO_FPS)  # drops the padded tail of the last piece
        if not states:
            return torch.zeros((0, 5, self.d_model), device=self.device, dtype=self.dtype)
        return torch.cat(states, dim=0)[:length]

    def audio_context(self, audio_16k: ArrayLike, n_frames: int, fps: int = 25) -> np.ndarray:
        """(n_frames, 50, 384) float32, positional encoding included."""
        context = frame_context(self.audio_features(audio_16k), range(int(n_frames)), fps)
        return context.float().cpu().numpy()

    # ---- crops -> latents -> UNet -> crops (FACTS.md sections 6, 7)

    def _pixels(self, images: ArrayLike, name: str) -> torch.Tensor:
        """(B, 256, 256, 3) uint8 RGB -> (B, 3, 256, 256) in [-1, 1] (vae.py:51-82: /255 in float64)."""
        images = _numpy(images)
        if images.ndim != 4 or images.shape[1:] != (CROP, CROP, 3) or images.dtype != np.uint8:
            raise ValueError(f"{name}: expected (B, {CROP}, {CROP}, 3) uint8 RGB, got {images.shape} {images.dtype}")
        x = torch.from_numpy((images / 255.0).astype(np.float32)).permute(0, 3, 1, 2).contiguous()
        return ((x - 0.5) / 0.5).to(self.device, self.dtype)

    def _latents(self, crops: ArrayLike, references: Optional[ArrayLike]) -> torch.Tensor:
        x = self._pixels(crops, "crops")
        ref = x if references is None else self._pixels(references, "references")
        if ref.shape != x.shape:
            raise ValueError(f"references: {tuple(ref.shape[:1])} images for {tuple(x.shape[:1])} crops")
        masked = x.clone()
        masked[:, :, CROP // 2:] = -1.0  # lower half black: the mouth the UNet must paint
        # The posterior's mode, not a sample, so the same inputs give the same frames (MuseTalk samples).
        latents = self.vae.encode(torch.cat([masked, ref])).latent_dist.mode() * self.scaling
        return torch.cat(latents.chunk(2), dim=1)  # (B, 8, 32, 32): masked first

    def _predict(self, latents: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        if latents.shape[0] != context.shape[0]:
            raise ValueError(f"context: {context.shape[0]} frames for {latents.shape[0]} latents")
        timestep = torch.tensor([0], device=self.device)  # one pass at t = 0, no scheduler
        return self.unet(latents, timestep, encoder_hidden_states=context).sample

    def _decode(self, latents: torch.Tensor) -> np.ndarray:
        image = self.vae.decode((1 / self.scaling) * latents).sample
        image = (image / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).float().cpu().numpy()
        return (image * 255).round().astype(np.uint8)  # RGB (MuseTalk flips to BGR here)

    @torch.inference_mode()
    def face_latents(self, crops: ArrayLike, references: Optional[ArrayLike] = None) -> np.ndarray:
        """(B, 8, 32, 32) float32: [masked crop | reference] x 0.18215; references=None: each crop its own."""
        return self._latents(crops, references).float().cpu().numpy()

    @torch.inference_mode()
    def predict_latents(self, latents: ArrayLike, context: ArrayLike) -> np.ndarray:
        """(B, 4, 32, 32) float32: one UNet pass at timestep 0."""
        return self._predict(self._tensor(latents), self._tensor(context)).float().cpu().numpy()

    @torch.inference_mode()
    def generate(self, crops: ArrayLike, context: ArrayLike, references: Optional[ArrayLike] = None) -> np.ndarray:
        """(B, 256, 256, 3) uint8 RGB: the crops with the lower half regenerated for their audio context."""
        return self._decode(self._predict(self._latents(crops, references), self._tensor(context)))

    def _tensor(self, x: ArrayLike) -> torch.Tensor:
        x = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
        return x.to(self.device, self.dtype)


def _numpy(x: ArrayLike) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


# ---- loading

def _fallback(repo: WeightRepo) -> Optional[WeightRepo]:
    files = tuple(WeightFile(PICKLE_FALLBACK.get(f.path, f.path), f.size) for f in repo.files)
    return WeightRepo(repo.repo_id, files, repo.licence, repo.revision) if files != repo.files else None


def _missing_files(repo: WeightRepo, exc: Exception) -> str:
    text = str(exc)
    if text.startswith(f"{repo.repo_id}: missing "):  # hub.local_folder's own message names the files
        return text
    return f"{repo.repo_id}: missing {', '.join(f.path for f in repo.files)}"


def weight_folders(local_files_only: bool = True, home: Optional[Path] = None) -> dict[str, Path]:
    """Snapshot folder of each repo in WEIGHTS. A safetensors file may be stood in for by the pickle that
    another tool already put in the hub cache. Raises EngineError naming every missing file."""
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    from ...models.hub import local_folder

    folders, missing = {}, []
    for repo in WEIGHTS:
        tries = [(repo, True)]
        if _fallback(repo):
            tries.append((_fallback(repo), True))
        if not local_files_only:
            tries.append((repo, False))
        error: Optional[Exception] = None
        for candidate, local in tries:
            try:
                folders[repo.repo_id] = local_folder(candidate, local_files_only=local, home=home)
                break
            except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as exc:
                error = error or exc  # the first answer names the files we would download
        else:
            missing.append(_missing_files(repo, error))
    if missing:
        how = "run `lipsync models download musetalk`" if local_files_only else "check the network and retry"
        raise EngineError(f"MuseTalk weights not found ({'; '.join(missing)}): {how}; "
                          "the built-in engine works offline")
    return folders


def _weights_path(folder: Path, name: str) -> Path:
    """The safetensors file when present, else its pickle."""
    path = folder / name
    return path if path.is_file() or name not in PICKLE_FALLBACK else folder / PICKLE_FALLBACK[name]


_LEGACY_ATTENTION = re.compile(r"^(.*\.attentions\.\d+)\.(query|key|value|proj_attn)\.(weight|bias)$")
_RENAMED = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


def _modern_vae_keys(state: dict) -> dict:
    """sd-vae-ft-mse stores its mid-block attention under the pre-0.14 diffusers names; rename as diffusers'
    own loader does (ModelMixin._fix_state_dict_keys_on_load)."""
    out = {}
    for key, value in state.items():
        m = _LEGACY_ATTENTION.match(key)
        out[f"{m[1]}.{_RENAMED[m[2]]}.{m[3]}" if m else key] = value
    return out


def _finish(module, device, dtype):
    leftover = [name for name, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
    if leftover:
        raise EngineError(f"MuseTalk: no weights for {leftover[0]}")
    module = module.to(device)
    if next(module.parameters()).dtype != dtype:  # diffusers warns on every .to(dtype), even a no-op one
        module = module.to(dtype)
    return module.eval().requires_grad_(False)


def load_pipeline(device: Union[str, torch.device] = "cpu", dtype: Union[str, torch.dtype] = "float32",
                  local_files_only: bool = True, home: Optional[Path] = None) -> MuseTalkPipeline:
    """Load MuseTalk 1.5 (UNet), sd-vae-ft-mse and whisper-tiny's encoder from the hub cache.
    `dtype`: "float32" (CPU), "float16" (CUDA), "bfloat16"; `home`: LIPSYNC_HOME, for the commit pins."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    device = torch.device(device)
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise EngineError(f"dtype: {dtype!r} is not one of {', '.join(DTYPES)}")
        dtype = DTYPES[dtype]
    folders = weight_folders(local_files_only, home)

    mt = folders[MUSETALK.repo_id]
    label = f"{MUSETALK.repo_id} {UNET_CONFIG}"
    config = read_config(mt / UNET_CONFIG, label)
    check_architecture(config, UNET_ARCHITECTURE, label)
    with torch.device("meta"):  # no random init of 850 M parameters only to overwrite them
        unet = UNet2DConditionModel.from_config(config)
    load_into(unet, read_state_dict(mt / UNET_WEIGHTS, f"{MUSETALK.repo_id} {UNET_WEIGHTS}"),
              f"{MUSETALK.repo_id} {UNET_WEIGHTS}")

    vae_dir = folders[SD_VAE.repo_id]
    config = read_config(vae_dir / "config.json", f"{SD_VAE.repo_id} config.json")
    check_architecture(config, VAE_ARCHITECTURE, f"{SD_VAE.repo_id} config.json")
    with torch.device("meta"):
        vae = AutoencoderKL.from_config(config)
    path = _weights_path(vae_dir, "diffusion_pytorch_model.safetensors")
    label = f"{SD_VAE.repo_id} {path.name}"
    load_into(vae, _modern_vae_keys(read_state_dict(path, label)), label)

    wh = folders[WHISPER.repo_id]
    config = read_config(wh / "config.json", f"{WHISPER.repo_id} config.json")
    check_architecture(config, WHISPER_ARCHITECTURE, f"{WHISPER.repo_id} config.json")
    if config["d_model"] != unet.config.cross_attention_dim:
        raise EngineError(f"{WHISPER.repo_id} config.json: d_model {config['d_model']} does not match the "
                          f"UNet's cross_attention_dim {unet.config.cross_attention_dim}")
    check_architecture(read_config(wh / "preprocessor_config.json", f"{WHISPER.repo_id} preprocessor_config.json"),
                       FEATURES_ARCHITECTURE, f"{WHISPER.repo_id} preprocessor_config.json")
    with torch.device("meta"):
        encoder = WhisperModel(WhisperConfig.from_dict(config)).encoder  # MuseTalk uses only the encoder
    path = _weights_path(wh, "model.safetensors")
    label = f"{WHISPER.repo_id} {path.name}"
    state = read_state_dict(path, label)
    prefix = "model.encoder." if any(k.startswith("model.encoder.") for k in state) else "encoder."
    load_into(encoder, {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, label)
    features = WhisperFeatureExtractor.from_pretrained(str(wh), local_files_only=True)

    return MuseTalkPipeline(_finish(unet, device, dtype), _finish(vae, device, dtype),
                            _finish(encoder, device, dtype), features, device, dtype)
