"""MuseTalk engine: the tensor pipeline through the real loading code, on tiny random models laid out as a
hub cache under the real repo ids (as diffusers' own tests build tiny models), and the crop geometry."""

from __future__ import annotations

import math
import os
import pickle

import numpy as np
import pytest
import torch

from lipsync.errors import EngineError
from lipsync.engines import musetalk
from lipsync.engines.musetalk import geometry as G
from lipsync.engines.musetalk import weights as W

from musetalk_hub import UNET_CONFIG, make_hub, tiny_state_dicts


@pytest.fixture(scope="session")
def tiny_weights():
    return tiny_state_dicts()


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty hub cache that huggingface_hub uses (it reads HF_HUB_CACHE once, at import)."""
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture(scope="module")
def pipe(tiny_weights, tmp_path_factory):
    import huggingface_hub.constants

    cache = make_hub(tmp_path_factory.mktemp("hub"), tiny_weights)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
        mp.setenv("HF_HUB_CACHE", str(cache))  # lipsync.models.hub reads the environment at each call
        return musetalk.load_pipeline(device="cpu", dtype="float32", local_files_only=True,
                                      home=tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def face_crops(astronaut):
    """Four 256x256 crops of a real face (the astronaut photo), slightly shifted."""
    return np.stack([G.crop_face(astronaut, (170 + 4 * i, 40, 320 + 4 * i, 210)) for i in range(4)])


@pytest.fixture(scope="module")
def speech_16k(speech_wav):
    import librosa

    return librosa.load(str(speech_wav), sr=16000)[0]


# ---- declarations

def test_weights_declare_the_three_repos_with_licences_and_sizes():
    by_id = {r.repo_id: r for r in musetalk.WEIGHTS}
    assert by_id["TMElyralab/MuseTalk"].licence == "creativeml-openrail-m"
    assert by_id["stabilityai/sd-vae-ft-mse"].licence == "MIT"
    assert by_id["openai/whisper-tiny"].licence == "Apache-2.0"
    assert {f.path for f in by_id["TMElyralab/MuseTalk"].files} == {"musetalkV15/musetalk.json", "musetalkV15/unet.pth"}
    assert 3e9 < by_id["TMElyralab/MuseTalk"].size < 4e9  # fp32 UNet of 850 M parameters
    assert all(f.path.endswith((".json", ".safetensors", ".pth")) for r in musetalk.WEIGHTS for f in r.files)


# ---- the seams

def test_seams_shapes_and_dtypes(pipe, face_crops, speech_16k):
    n_frames = math.floor(len(speech_16k) / 16000 * 25)
    context = pipe.audio_context(speech_16k, n_frames)
    assert context.shape == (n_frames, 50, 384) and context.dtype == np.float32
    latents = pipe.face_latents(face_crops[:2])
    assert latents.shape == (2, 8, 32, 32) and latents.dtype == np.float32
    pred = pipe.predict_latents(latents, context[:2])
    assert pred.shape == (2, 4, 32, 32) and pred.dtype == np.float32
    # torch tensors are accepted too (oneDNN may pick another kernel on a second call: not bit-equal)
    again = pipe.predict_latents(torch.from_numpy(latents), torch.from_numpy(context[:2]))
    np.testing.assert_allclose(pred, again, atol=1e-4)


def test_latents_are_deterministic_and_the_masked_half_ignores_the_mouth(pipe, face_crops):
    a = pipe.face_latents(face_crops[:2])
    np.testing.assert_array_equal(a, pipe.face_latents(face_crops[:2]))  # posterior mode, no sampling
    other_mouth = face_crops[:2].copy()
    other_mouth[:, 128:] = 255 - other_mouth[:, 128:]
    b = pipe.face_latents(other_mouth)
    np.testing.assert_array_equal(a[:, :4], b[:, :4])  # the masked crop never sees the lower half
    assert np.abs(a[:, 4:] - b[:, 4:]).max() > 1e-3  # the reference does


def test_references_change_only_the_reference_channels(pipe, face_crops):
    own = pipe.face_latents(face_crops[:1])
    swapped = pipe.face_latents(face_crops[:1], references=face_crops[3:4])
    np.testing.assert_allclose(own[:, :4], swapped[:, :4], atol=1e-5)
    np.testing.assert_allclose(swapped[:, 4:], pipe.face_latents(face_crops[3:4])[:, 4:], atol=1e-5)
    assert np.abs(own[:, 4:] - swapped[:, 4:]).max() > 1e-3


def test_generate_is_decode_of_predict(pipe, face_crops, speech_16k):
    context = pipe.audio_context(speech_16k, 1)
    got = pipe.generate(face_crops[:1], context).astype(int)
    assert got.shape == (1, 256, 256, 3)
    pred = pipe.predict_latents(pipe.face_latents(face_crops[:1]), context)
    image = pipe.vae.decode(torch.from_numpy(pred) / pipe.scaling).sample
    expected = ((image / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).detach().numpy() * 255).round().astype(np.uint8)
    assert np.abs(got - expected).max() <= 1 and (got != expected).mean() < 0.01  # kernel choice: +-1 level


def test_audio_past_30_s_is_encoded_in_30_s_pieces(pipe, speech_16k):
    audio = np.tile(speech_16k, math.ceil(31.3 * 16000 / len(speech_16k)))[:int(31.3 * 16000)]
    features = pipe.audio_features(audio)
    assert features.shape == (math.floor(len(audio) / 16000 * 50), 5, 384)  # 1565 steps, padded tail dropped
    first = pipe.audio_features(audio[:480000])
    rest = pipe.audio_features(audio[480000:])
    torch.testing.assert_close(features[:1500], first)  # each piece encoded on its own, as MuseTalk does
    torch.testing.assert_close(features[1500:], rest)
    from lipsync.engines.musetalk.model import frame_context

    assert frame_context(features, range(782)).shape == (782, 50, 384)  # T = floor(31.3 * 25)


def test_frame_window_is_steps_2f_minus_4_to_2f_plus_6():
    from lipsync.engines.musetalk.model import frame_context, positional_encoding

    length = 30
    features = torch.arange(1, length + 1, dtype=torch.float32)[:, None, None].expand(length, 5, 384).contiguous()
    context = frame_context(features, range(15)) - positional_encoding(50, 384)
    steps = context[:, ::5, 0].round()  # state 0 of each of the 10 steps: the feature's step number + 1, 0 = padding
    for f in range(15):
        want = [s + 1 if 0 <= s < length else 0 for s in range(2 * f - 4, 2 * f + 6)]
        assert steps[f].tolist() == want
    layered = (100 * torch.arange(1, length + 1.0)[:, None] + torch.arange(5.0))[:, :, None].expand(length, 5, 384)
    tokens = (frame_context(layered.contiguous(), [3]) - positional_encoding(50, 384))[0, :, 0].round()
    assert tokens[5:10].tolist() == [400, 401, 402, 403, 404]  # token 5 * step + state: time outer, state inner
    at_30 = frame_context(features, range(18), fps=30) - positional_encoding(50, 384)
    assert [round(at_30[f, 20, 0].item()) - 1 for f in (0, 1, 2, 3)] == [0, 1, 3, 5]  # floor(f * 5 / 3)


def test_positional_encoding_is_sin_cos_over_50_tokens():
    from lipsync.engines.musetalk.model import positional_encoding

    pe = positional_encoding(50, 384)
    assert pe.shape == (50, 384)
    p, i = 7, 10
    assert pe[p, 2 * i].item() == pytest.approx(math.sin(p * math.exp(-2 * i * math.log(10000) / 384)), abs=1e-6)
    assert pe[p, 2 * i + 1].item() == pytest.approx(math.cos(p * math.exp(-2 * i * math.log(10000) / 384)), abs=1e-6)


# ---- loading: refusals and messages

def test_a_unet_config_for_another_architecture_is_refused(hub_cache, tiny_weights):
    make_hub(hub_cache, tiny_weights, unet_config={**UNET_CONFIG, "cross_attention_dim": 768})
    with pytest.raises(EngineError, match="cross_attention_dim is 768, MuseTalk 1.5 needs 384"):
        musetalk.load_pipeline()
    make_hub(hub_cache, tiny_weights, unet_config={**UNET_CONFIG, "in_channels": 4})
    with pytest.raises(EngineError, match="in_channels is 4"):
        musetalk.load_pipeline()


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_a_pickle_that_runs_code_is_refused(hub_cache, tiny_weights, tmp_path):
    marker = str(tmp_path / "pwned")
    make_hub(hub_cache, tiny_weights, unet_file=pickle.dumps({"conv_in.weight": _RunsCode(marker)}, protocol=2))
    with pytest.raises(EngineError, match="unet.pth: refused to load, the pickle is not a plain state dict"):
        musetalk.load_pipeline()
    assert not os.path.exists(marker)


def test_a_pickle_that_is_not_a_state_dict_is_refused(hub_cache, tiny_weights, tmp_path):
    import io

    buffer = io.BytesIO()
    torch.save({"state_dict": tiny_weights["unet"], "epoch": 3}, buffer)  # a training checkpoint
    make_hub(hub_cache, tiny_weights, unet_file=buffer.getvalue())
    with pytest.raises(EngineError, match="unet.pth: refused to load, entry 'state_dict' is not a tensor"):
        musetalk.load_pipeline()


def test_weights_that_do_not_fit_the_config_are_refused(hub_cache, tiny_weights):
    wrong = dict(tiny_weights["unet"])
    wrong["conv_in.weight"] = torch.zeros(32, 4, 3, 3)
    make_hub(hub_cache, tiny_weights, unet_file=wrong)
    with pytest.raises(EngineError, match="unet.pth: the weights do not fit the config"):
        musetalk.load_pipeline()


def test_offline_without_weights_names_the_files_and_the_command(hub_cache):
    with pytest.raises(EngineError) as err:
        musetalk.load_pipeline(local_files_only=True)
    text = str(err.value)
    for name in ("musetalkV15/unet.pth", "diffusion_pytorch_model.safetensors", "openai/whisper-tiny"):
        assert name in text
    assert "lipsync models download musetalk" in text and "built-in engine works offline" in text


def test_offline_with_one_file_missing_names_that_file(hub_cache, tiny_weights):
    make_hub(hub_cache, tiny_weights, skip=(W.UNET_WEIGHTS,))
    with pytest.raises(EngineError, match=r"TMElyralab/MuseTalk: missing musetalkV15/unet.pth\)") as err:
        musetalk.load_pipeline()
    assert "sd-vae-ft-mse" not in str(err.value)


def test_a_vae_pickle_left_by_another_tool_is_used_when_no_safetensors(hub_cache, tiny_weights, face_crops):
    make_hub(hub_cache, tiny_weights, vae_file="diffusion_pytorch_model.bin")
    pipe = musetalk.load_pipeline()
    assert pipe.face_latents(face_crops[:1]).shape == (1, 8, 32, 32)


# ---- geometry (FACTS.md sections 5 and 8)

def synthetic_landmarks() -> np.ndarray:
    """68 iBUG-ordered points of a face centred at (200, 220): jaw arc, nose line, lips ring."""
    lm = np.zeros((68, 2))
    t = np.linspace(0, np.pi, 17)
    lm[0:17] = np.c_[200 - 80 * np.cos(t), 180 + 90 * np.sin(t)]  # ear (y 180) -> chin (y 270) -> ear
    lm[17:27] = np.c_[np.linspace(135, 265, 10), np.full(10, 150)]  # brows
    lm[27:31] = np.c_[np.full(4, 200), [160, 175, 190, 205]]  # nose bridge; 29 at y 190
    lm[31:36] = np.c_[np.linspace(185, 215, 5), np.full(5, 210)]
    lm[36:48] = np.c_[np.tile(np.linspace(150, 250, 6), 2), np.full(12, 165)]  # eyes
    a = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    lm[48:68] = np.c_[200 + 30 * np.cos(a), 240 + 10 * np.sin(a)]
    return lm


def test_crop_box_follows_musetalk_rule():
    lm = synthetic_landmarks()
    x1, y1, x2, y2 = G.crop_box(lm, (480, 400, 3))
    y_max = int(lm[:, 1].astype(np.int32).max())
    assert (x1, x2) == (int(lm[:, 0].astype(np.int32).min()), int(lm[:, 0].astype(np.int32).max()))
    assert y1 == 2 * 190 - y_max  # as far above point 29 as the chin is below it
    assert y2 == y_max + 10  # v1.5's extra margin, bottom only
    assert G.crop_box(lm, (275, 400, 3))[3] == 275  # clamped at the frame's bottom
    assert G.crop_box(lm, (480, 400, 3), bbox_shift=5)[1] == 2 * 195 - y_max
    shifted = lm - (150, 0)
    assert G.crop_box(shifted, (480, 400, 3)) is None  # x1 < 0: MuseTalk falls back to the detector box


def test_crop_face_is_lanczos_256():
    frame = np.zeros((480, 400, 3), np.uint8)
    frame[:, :, 1] = 200
    crop = G.crop_face(frame, (50, 60, 250, 300))
    assert crop.shape == (256, 256, 3) and crop.dtype == np.uint8
    assert (crop[..., 1] == 200).all() and (crop[..., 0] == 0).all()
    ramp = np.tile((np.arange(400) % 256).astype(np.uint8)[None, :, None], (480, 1, 3))
    crop = G.crop_face(ramp, (0, 0, 200, 200))
    assert crop[0, 0, 0] < 3 and abs(int(crop[0, 255, 0]) - 199) <= 2  # left to right, not flipped


def test_paste_back_changes_only_the_lower_face(astronaut):
    frame = np.ascontiguousarray(astronaut[:480, :400])
    lm = synthetic_landmarks()
    box = G.crop_box(lm, frame.shape)
    mask = G.lower_face_mask(lm, box, frame.shape)
    generated = np.full((256, 256, 3), 255, np.uint8)
    out = G.paste_back(frame, generated, box, mask)
    changed = np.abs(out.astype(int) - frame.astype(int)).max(axis=2) > 0
    rows = np.nonzero(changed.any(axis=1))[0]
    cols = np.nonzero(changed.any(axis=0))[0]
    assert rows.min() >= 190  # never above the nose-bridge point 29
    assert box[0] <= cols.min() and cols.max() < box[2] and rows.max() < box[3]  # inside the face box
    assert (out[240, 200] == 255).all()  # the mouth is the generated crop
    assert (out[:190] == frame[:190]).all()
    x1, y1, x2, y2 = G.expand_box(box)
    assert x2 - x1 == y2 - y1 == 2 * int(max(box[2] - box[0], box[3] - box[1]) // 2 * 1.5)
    ramp = mask.alpha[:, 200 - mask.region[0]]
    assert 0 < ramp.max() <= 1 and np.any((ramp > 0.05) & (ramp < 0.95))  # a feathered edge, not a cut
