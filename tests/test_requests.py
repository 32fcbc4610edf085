import pytest

from lipsync.engines.builtin.style import Style, parse_prompt
from lipsync.errors import InputError
from lipsync.requests import MultiRequest, parse_request


def test_defaults_follow_the_hosted_api():
    req = parse_request("lipsync-image-multi", {"image": "a.png", "left_audio": "l.wav", "right_audio": "r.wav"})
    assert isinstance(req, MultiRequest)
    assert (req.order, req.resolution, req.seed) == ("meanwhile", "480p", None)


@pytest.mark.parametrize("model,form,field", [
    ("lipsync-video", {"audio": "a.wav"}, "video"),
    ("lipsync-image", {"image": "i.png", "audio": "a.wav", "resolution": "1080p"}, "resolution"),
    ("lipsync-image-multi", {"image": "i.png", "left_audio": "l", "right_audio": "r", "order": "both"}, "order"),
    ("lipsync-image", {"image": "i.png", "audio": "a.wav", "seed": -3}, "seed"),
    ("lipsync-image", {"image": "i.png", "audio": "a.wav", "colour": "red"}, "colour"),
    ("lipsync-audio", {}, "model"),
])
def test_validation_errors_name_the_field(model, form, field):
    with pytest.raises(InputError) as err:
        parse_request(model, form)
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}: ")


def test_blank_prompt_and_mask_are_none():
    req = parse_request("lipsync-image", {"image": "i.png", "audio": "a.wav", "prompt": "  ", "mask_image": ""})
    assert req.prompt is None and req.mask_image is None


def test_prompt_vocabulary_scales_motion_and_reports_unknown_words():
    style, unknown = parse_prompt("Calm, with a slight smile and sparkles")
    assert style.head < 1 and style.mouth < 1 and style.smile > 0
    assert unknown == ["slight", "sparkles"]
    assert parse_prompt("still")[0].head == 0
    assert parse_prompt(None) == (Style(), [])
    energetic, _ = parse_prompt("energetic")
    assert energetic.mouth > 1 and energetic.head > 1
