"""Presets: the shipped files are valid requests, and user presets load, save and shadow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lipsync.errors import InputError
from lipsync.presets import Preset, builtin_dir, list_presets, load_preset, save_preset, slugify, user_dir
from lipsync.requests import parse_request

REPO = Path(__file__).resolve().parents[1]
MEDIA = {
    "lipsync-image": {"image": "assets/portrait.png", "audio": "assets/speech_en.wav"},
    "lipsync-video": {"video": "assets/talking.mp4", "audio": "assets/speech_en.wav"},
    "lipsync-image-multi": {
        "image": "assets/two_people.png",
        "left_audio": "assets/speech_left.wav",
        "right_audio": "assets/speech_right.wav",
    },
}


def test_builtin_folder_is_the_repo_presets_folder():
    assert builtin_dir() == REPO / "presets"


def test_builtin_presets_are_listed_by_slug():
    slugs = [p.slug for p in list_presets()]
    assert slugs == ["energetic", "podcast-dialogue", "quality-720p", "quick-preview"]


def test_builtin_file_names_match_their_display_names():
    for path in (REPO / "presets").glob("*.json"):
        assert slugify(json.loads(path.read_text())["name"]) == path.stem


@pytest.mark.parametrize("model", sorted(MEDIA))
def test_every_builtin_preset_makes_a_valid_request_of_every_kind(model):
    for preset in list_presets():
        request = parse_request(model, {**preset.options(model), **MEDIA[model]})
        assert request.resolution == preset.resolution
        assert request.prompt == preset.prompt
        assert request.seed == preset.seed


def test_builtin_values():
    assert load_preset("quick-preview").resolution == "480p"
    assert load_preset("Quality 720p").resolution == "720p"
    podcast = load_preset("podcast-dialogue")
    assert (podcast.order, podcast.prompt) == ("meanwhile", "calm")
    assert load_preset("energetic").prompt == "energetic smile"
    # A blank prompt in the file means "no prompt", as in requests.
    assert load_preset("quick-preview").prompt is None


def test_order_is_only_passed_to_two_person_jobs():
    podcast = load_preset("podcast-dialogue")
    assert podcast.options("lipsync-image-multi")["order"] == "meanwhile"
    assert "order" not in podcast.options("lipsync-image")
    assert parse_request("lipsync-image-multi", {**podcast.options("lipsync-image-multi"), **MEDIA["lipsync-image-multi"]}).order == "meanwhile"


def test_save_then_load_round_trips_under_home(lipsync_home):
    preset = Preset(name="My Draft!", description="mine", resolution="720p", seed=7, prompt="smile")
    path = save_preset(preset)
    assert path == lipsync_home / "presets" / "my-draft.json"
    assert load_preset("my-draft") == preset
    assert load_preset("My Draft!") == preset
    assert load_preset(path) == preset
    assert preset in list_presets()
    assert list_presets(user_dir()) == [preset]


def test_save_into_a_folder_and_replace(tmp_path):
    save_preset(Preset(name="Take", seed=1), tmp_path)
    save_preset(Preset(name="Take", seed=2), tmp_path)
    assert [p.seed for p in list_presets(tmp_path)] == [2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take.json"]


def test_user_preset_shadows_builtin():
    save_preset(Preset(name="Quick preview", resolution="720p"))
    assert load_preset("quick-preview").resolution == "720p"
    quick = [p for p in list_presets() if p.slug == "quick-preview"]
    assert [p.resolution for p in quick] == ["720p"]


def test_unknown_preset_names_the_choices():
    with pytest.raises(InputError) as info:
        load_preset("cinematic")
    assert info.value.field == "preset"
    assert "'cinematic'" in info.value.problem and "quick-preview" in info.value.problem


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"name": "X", "sed": 3}', "bad.json: sed is not a known option"),
        ('{"name": "X", "resolution": "1080p"}', "bad.json: resolution '1080p' is not allowed"),
        ('{"name": "X", "seed": -1}', "bad.json: seed"),
        ('{"description": "no name"}', "bad.json: name is required"),
        ('{"name": "X",', "bad.json: not valid JSON"),
        ('["X"]', "bad.json: expected a JSON object"),
    ],
)
def test_bad_file_errors_name_file_and_key(tmp_path, content, expected):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(InputError) as info:
        load_preset(path)
    assert str(info.value).startswith(f"preset: {expected}")


def test_missing_file():
    with pytest.raises(InputError, match="file not found"):
        load_preset("/nonexistent/preset.json")


def test_broken_user_file_is_skipped_not_fatal(caplog):
    save_preset(Preset(name="Good one"))
    (user_dir() / "broken.json").write_text("{")
    slugs = [p.slug for p in list_presets()]
    assert "good-one" in slugs and "broken" not in slugs and "quick-preview" in slugs
    assert "broken.json" in caplog.text


def test_name_needs_a_letter_or_digit():
    with pytest.raises(ValueError):
        Preset(name="!!!")
    assert slugify("  Énergique  Mode ") == "energique-mode"
