import pytest

from lipsync import pricing


def test_worked_examples_from_the_hosted_api():
    assert pricing.estimate_image(3, "720p").credits == 20  # 3 s → 5 s minimum × 4
    assert pricing.estimate_image(10, "480p").credits == 20  # 10 s × 2


def test_fractional_seconds_round_up_and_minimum_applies():
    est = pricing.estimate_image(5.2, "480p")
    assert (est.billed_seconds, est.rate, est.credits) == (6, 2, 12)
    assert pricing.estimate_image(4.999, "480p").billed_seconds == 5
    assert "minimum 5 s" in pricing.estimate_image(0.4, "720p").rule
    assert pricing.estimate_image(3.0000000001, "480p").billed_seconds == 5


def test_video_dub_bills_the_audio_whatever_the_video_length():
    longer_video = pricing.estimate_video(audio_seconds=7.5, video_seconds=30, resolution="480p")
    shorter_video = pricing.estimate_video(audio_seconds=7.5, video_seconds=2, resolution="480p")
    assert longer_video.credits == shorter_video.credits == 16
    assert "truncated" in longer_video.rule and "extended" in shorter_video.rule


def test_multi_meanwhile_bills_the_longer_track_sequential_the_sum():
    assert pricing.estimate_multi(4, 6.5, "meanwhile", "480p").billed_seconds == 7
    assert pricing.estimate_multi(4, 6.5, "left_right", "480p").billed_seconds == 11
    assert pricing.estimate_multi(4, 6.5, "right_left", "720p").credits == 44
    assert pricing.estimate_multi(1, 1, "left_right", "480p").credits == 10  # 2 s → 5 s minimum


@pytest.mark.parametrize("call", [
    lambda: pricing.estimate_image(3, "1080p"),
    lambda: pricing.estimate_multi(1, 2, "together", "480p"),
    lambda: pricing.estimate_image(-1, "480p"),
])
def test_bad_options_are_refused(call):
    with pytest.raises(ValueError):
        call()
