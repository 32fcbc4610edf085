"""The files MuseTalk 1.5 needs, as data (FACTS.md section 1). Nothing here imports torch or the Hub.

Sizes are the expected byte counts shown before a download and used for the free-disk check. They are
computed from the configs (parameters x 4 bytes, fp32, plus a small header), not read from the Hub.
"""

from __future__ import annotations

from ...models.spec import WeightFile, WeightRepo

UNET_CONFIG = "musetalkV15/musetalk.json"
UNET_WEIGHTS = "musetalkV15/unet.pth"

MUSETALK = WeightRepo(
    "TMElyralab/MuseTalk",
    (WeightFile(UNET_CONFIG, 742), WeightFile(UNET_WEIGHTS, 3_400_000_000)),  # 849,947,844 params
    licence="creativeml-openrail-m",
)
# Both repos also publish .bin pickles; we download the safetensors (no pickle to trust) and only fall back
# to a .bin that another tool already put in the hub cache (see model.load_pipeline).
SD_VAE = WeightRepo(
    "stabilityai/sd-vae-ft-mse",
    (WeightFile("config.json", 547), WeightFile("diffusion_pytorch_model.safetensors", 334_650_000)),  # 83.65 M
    licence="MIT",
)
WHISPER = WeightRepo(
    "openai/whisper-tiny",
    (WeightFile("config.json", 1_983), WeightFile("model.safetensors", 151_060_000),  # 37.76 M params
     WeightFile("preprocessor_config.json", 185_000)),
    licence="Apache-2.0",
)
WEIGHTS = (MUSETALK, SD_VAE, WHISPER)

# The pickle each safetensors file replaces in caches made by other tools (MuseTalk's download script).
PICKLE_FALLBACK = {
    "diffusion_pytorch_model.safetensors": "diffusion_pytorch_model.bin",
    "model.safetensors": "pytorch_model.bin",
}
