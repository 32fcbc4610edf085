"""Tiny random MuseTalk, sd-vae and whisper models (the real classes, as diffusers' own tests build tiny
models) laid out as a hub cache under the real repo ids. Shared by the MuseTalk tests."""

from __future__ import annotations

import functools
import json

import torch

from lipsync.engines.musetalk import weights as W

SEED = 1234  # not the golden set's seed
COMMIT = "0123456789abcdef0123456789abcdef01234567"
UNET_CONFIG = {
    "_class_name": "UNet2DConditionModel", "act_fn": "silu", "attention_head_dim": 8,
    "block_out_channels": [32, 32, 32, 32], "center_input_sample": False, "cross_attention_dim": 384,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 8, "layers_per_block": 1,
    "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32, "out_channels": 4, "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}
VAE_CONFIG = {
    "_class_name": "AutoencoderKL", "act_fn": "silu", "block_out_channels": [8, 8, 8, 8],
    "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 1, "norm_num_groups": 8,
    "sample_size": 256,
}
WHISPER_CONFIG = {
    "model_type": "whisper", "vocab_size": 64, "num_mel_bins": 80, "d_model": 384, "encoder_layers": 4,
    "encoder_attention_heads": 6, "encoder_ffn_dim": 64, "decoder_layers": 1, "decoder_attention_heads": 6,
    "decoder_ffn_dim": 64, "max_source_positions": 1500, "max_target_positions": 32, "pad_token_id": 0,
    "bos_token_id": 1, "eos_token_id": 2, "decoder_start_token_id": 1,
}
FEATURES_CONFIG = {
    "chunk_length": 30, "feature_extractor_type": "WhisperFeatureExtractor", "feature_size": 80, "hop_length": 160,
    "n_fft": 400, "n_samples": 480000, "nb_max_frames": 3000, "padding_side": "right", "padding_value": 0.0,
    "return_attention_mask": False, "sampling_rate": 16000,
}


@functools.cache
def tiny_state_dicts():
    """State dicts of tiny random MuseTalk, VAE (saved with the legacy attention names, as sd-vae-ft-mse
    is) and whisper models; made once per session (callers only read them)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    torch.manual_seed(SEED)
    unet = UNet2DConditionModel.from_config(UNET_CONFIG).state_dict()
    vae = AutoencoderKL.from_config(VAE_CONFIG).state_dict()
    legacy = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    for key in [k for k in vae if ".attentions." in k]:
        for new, old in legacy.items():
            if f".{new}." in key:
                vae[key.replace(f".{new}.", f".{old}.")] = vae.pop(key)
    whisper = WhisperForConditionalGeneration(WhisperConfig(**WHISPER_CONFIG)).state_dict()
    whisper.pop("proj_out.weight", None)  # tied to the token embedding; the Hub file does not hold it
    return {"unet": unet, "vae": vae, "whisper": whisper}


def write_repo(cache, repo_id: str, files: dict) -> None:
    root = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = root / "snapshots" / COMMIT
    for name, content in files.items():
        path = snapshot / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, dict) and content and all(isinstance(v, torch.Tensor) for v in content.values()):
            if name.endswith(".safetensors"):
                from safetensors.torch import save_file

                save_file({k: v.contiguous() for k, v in content.items()}, str(path))
            else:
                torch.save(content, path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(json.dumps(content))
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(COMMIT)


def make_hub(cache, weights, *, unet_config=None, unet_file=None, vae_file="diffusion_pytorch_model.safetensors",
             skip=()):
    files = {
        W.MUSETALK.repo_id: {W.UNET_CONFIG: unet_config or UNET_CONFIG, W.UNET_WEIGHTS: unet_file or weights["unet"]},
        W.SD_VAE.repo_id: {"config.json": VAE_CONFIG, vae_file: weights["vae"]},
        W.WHISPER.repo_id: {"config.json": WHISPER_CONFIG, "model.safetensors": weights["whisper"],
                            "preprocessor_config.json": FEATURES_CONFIG},
    }
    for repo_id, content in files.items():
        write_repo(cache, repo_id, {k: v for k, v in content.items() if k not in skip})
    return cache
