"""Frames per second of the MuseTalk engine's `render_batch` (crop, VAE encode, UNet, VAE decode,
paste-back) at batch sizes 1, 4 and 8, on random weights.

    python bench/musetalk_speed.py                                   # tiny models (the tests' ones), CPU
    python bench/musetalk_speed.py --size real                       # MuseTalk 1.5's real sizes, CPU fp32
    python bench/musetalk_speed.py --size real --device cuda --dtype float16 --batches 1,4,8,16

`--size real` builds the UNet (850 M parameters), sd-vae-ft-mse and whisper-tiny's encoder from their
real configs with random weights (FACTS.md sections 2-3): the cost of a frame is the same as with the
trained weights, and nothing is downloaded. The frame is the astronaut photo at 480p, the face found
by our FaceMesh as in a job, every frame repainted (a dub). Whisper runs once per job and is timed apart.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

REAL_UNET = {
    "act_fn": "silu", "attention_head_dim": 8, "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False, "cross_attention_dim": 384,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 8, "layers_per_block": 2,
    "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32, "out_channels": 4, "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}
REAL_VAE = {
    "act_fn": "silu", "block_out_channels": [128, 256, 512, 512], "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4, "in_channels": 3, "out_channels": 3, "latent_channels": 4,
    "layers_per_block": 2, "norm_num_groups": 32, "sample_size": 256,
}
REAL_WHISPER = {  # openai/whisper-tiny
    "d_model": 384, "encoder_layers": 4, "encoder_attention_heads": 6, "encoder_ffn_dim": 1536,
    "decoder_layers": 4, "decoder_attention_heads": 6, "decoder_ffn_dim": 1536, "num_mel_bins": 80,
    "vocab_size": 51865, "max_source_positions": 1500, "max_target_positions": 448,
}


def build_pipe(size: str, device: str, dtype: str):
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import WhisperConfig, WhisperFeatureExtractor
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    from lipsync.engines.musetalk.model import DTYPES, MuseTalkPipeline

    if size == "tiny":
        from musetalk_hub import UNET_CONFIG, VAE_CONFIG, WHISPER_CONFIG

        unet_cfg, vae_cfg, whisper_cfg = UNET_CONFIG, VAE_CONFIG, WHISPER_CONFIG
    else:
        unet_cfg, vae_cfg, whisper_cfg = REAL_UNET, REAL_VAE, REAL_WHISPER
    torch.manual_seed(0)
    t = torch.device(device)
    models = [UNet2DConditionModel.from_config(unet_cfg), AutoencoderKL.from_config(vae_cfg),
              WhisperEncoder(WhisperConfig(**whisper_cfg))]
    # Built in float32; cast only when asked (diffusers warns on any .to(dtype)).
    models = [m.to(t) if dtype == "float32" else m.to(t, DTYPES[dtype]) for m in models]
    unet, vae, encoder = (m.eval().requires_grad_(False) for m in models)
    params = sum(p.numel() for p in unet.parameters())
    return MuseTalkPipeline(unet, vae, encoder, WhisperFeatureExtractor(), t, DTYPES[dtype]), params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("tiny", "real"), default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"))
    parser.add_argument("--batches", default="1,4,8")
    parser.add_argument("--runs", type=int, default=3, help="timed calls per batch size (after one warm-up)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()

    import cv2
    import torch
    from skimage import data

    from lipsync.engines.base import FrameBatch, RenderPlan, Speaker
    from lipsync.engines.musetalk import engine
    from lipsync.face import FaceAnalyzer
    from lipsync.speech.track import MouthTrack

    if args.threads:
        torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    t0 = time.perf_counter()
    pipe, params = build_pipe(args.size, args.device, args.dtype)
    built = time.perf_counter() - t0

    frame = cv2.resize(data.astronaut(), (480, 480), interpolation=cv2.INTER_AREA)
    with FaceAnalyzer() as analyzer:
        face = max(analyzer.detect(frame), key=lambda f: f.size)
    n = max(batches) * (args.runs + 1) + 1
    audio = (0.1 * np.random.default_rng(0).standard_normal(n * 16000 // 25)).astype(np.float32)
    z = np.zeros(n, np.float32)
    track = MouthTrack(25, z, z, z, np.ones(n, bool), [], "acoustic")
    plan = RenderPlan("lipsync-video", (480, 480), 25, n, [Speaker(track, face, audio=audio)], seed=0, audio=audio)

    def sync():
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    t0 = time.perf_counter()
    renderer = engine.renderer(pipe, plan)  # whisper over the whole line, once
    sync()
    whisper = time.perf_counter() - t0

    rows = []
    for b in batches:
        batch = FrameBatch(0, [frame] * b, [[face]] * b)
        renderer.render_batch(batch)  # warm-up (kernel choice, allocator)
        sync()
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            renderer.render_batch(batch)
            sync()
            times.append(time.perf_counter() - t0)
        best, median = min(times), statistics.median(times)
        rows.append((b, b / median, b / best, 1000 * median / b))

    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)"
    print(f"MuseTalk render_batch, {args.size} models (UNet {params / 1e6:.1f} M parameters), {name}, {args.dtype}")
    print(f"models built in {built:.1f} s; whisper features of {n / 25:.1f} s of audio: {whisper:.2f} s")
    print(f"{'batch':>5} | {'frames/s (median)':>17} | {'frames/s (best)':>15} | {'ms/frame':>8}")
    print("-" * 5 + "-+-" + "-" * 17 + "-+-" + "-" * 15 + "-+-" + "-" * 8)
    for b, fps, best, ms in rows:
        print(f"{b:>5} | {fps:>17.2f} | {best:>15.2f} | {ms:>8.1f}")


if __name__ == "__main__":
    main()
