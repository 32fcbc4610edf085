"""The built-in engine's mouth interior, on the astronaut (teeth showing) and Grace Hopper (lips closed)."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from lipsync.engines.base import RenderPlan, Speaker
from lipsync.engines.builtin import MAX_GAP, BuiltinRenderer
from lipsync.engines.builtin.interior import BANK_SIZE, PhotoLook, InteriorBank, capture, high_pass, robust_std, sample
from lipsync.engines.builtin.mouth import mouth_colours, paint_interior
from lipsync.engines.builtin.warp import MouthShape, mouth_geometry, mouth_warp
from lipsync.face import FaceAnalyzer
from lipsync.face import regions as R
from lipsync.speech import MouthTrack


@pytest.fixture(scope="module")
def faces(astronaut, grace_hopper):
    with FaceAnalyzer() as fa:
        return {"astronaut": (astronaut, fa.detect(astronaut)[0]), "hopper": (grace_hopper, fa.detect(grace_hopper)[0])}


def luma(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(rgb, np.float64) @ np.array([0.299, 0.587, 0.114])


def source_opening(img, face) -> float:
    """The photo's own inner-lip gap at the centre, in the warp's face scales."""
    geo = mouth_geometry(face.landmarks, img.shape[:2])
    return capture(img, geo, mouth_colours(img, face.landmarks).lip).opening


def open_mouth(img, face, gap, *, real=True, width=0.0, colours=None):
    """(warped ROI before the interior, after it, the warp, the colours)."""
    geo = mouth_geometry(face.landmarks, img.shape[:2])
    colours = colours or mouth_colours(img, face.landmarks)
    warp = mouth_warp(geo, MouthShape(gap=gap, width=width))
    roi = cv2.remap(img, warp.map_x, warp.map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    tex = capture(img, geo, colours.lip) if real else None
    return roi, paint_interior(roi.copy(), warp, colours, geo.frame.scale, tex, seed=3), warp, colours


def test_painted_interior_is_darker_than_the_lips_with_teeth_brighter_than_the_throat(faces):
    img, face = faces["hopper"]
    _, out, warp, colours = open_mouth(img, face, 0.2)
    inside = warp.interior > 0.99
    centre = inside & (np.abs(warp.across) < 0.3)
    throat = centre & (warp.depth > 0.4) & (warp.depth < 0.6)
    teeth = centre & (warp.depth * warp.gap_px < 0.03 * mouth_geometry(face.landmarks, img.shape[:2]).frame.scale)
    assert throat.sum() > 20 and teeth.sum() > 10
    lip = luma(colours.lip)
    assert luma(out[throat]).mean() < 0.5 * lip
    assert luma(out[teeth]).mean() > 3 * luma(out[throat]).mean()
    assert luma(out[teeth]).mean() > lip  # off-white, not grey


def test_paint_has_the_grain_of_the_skin_around_it(faces):
    img, face = faces["hopper"]
    colours = mouth_colours(img, face.landmarks)
    _, out, warp, _ = open_mouth(img, face, 0.22)
    _, clean, _, _ = open_mouth(img, face, 0.22, colours=replace(colours, look=PhotoLook(0.0, colours.look.blur)))
    gray = lambda rgb: cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)  # noqa: E731
    # The patch's own high frequencies, less those of the clean paint (its edges): the grain as it
    # comes out, after clipping in the dark.
    inside = cv2.erode((warp.interior > 0.99).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    grain = (high_pass(gray(out)) - high_pass(gray(clean)))[inside]
    # Skin: a ring around the lips.
    lips = np.zeros(out.shape[:2], np.uint8)
    x0, y0 = warp.roi[:2]
    cv2.fillPoly(lips, [np.round(face.landmarks[list(R.LIPS_OUTER)] - [x0, y0]).astype(np.int32)], 1)
    ring = cv2.dilate(lips, np.ones((31, 31), np.uint8)) - cv2.dilate(lips, np.ones((11, 11), np.uint8))
    assert inside.sum() > 300 and ring.sum() > 500
    paint, skin = robust_std(grain), robust_std(high_pass(gray(out))[ring > 0])
    print(f"grain: paint {paint:.2f}, skin {skin:.2f}")
    assert skin / 2 < paint < skin * 2, (paint, skin)


def test_closed_mouth_is_unchanged_by_the_interior(faces):
    img, face = faces["hopper"]
    before, after, warp, _ = open_mouth(img, face, 0.0)
    assert warp.interior.max() <= 0.01
    assert np.array_equal(before, after)
    # Also with another face's real interior on hand.
    a_img, a_face = faces["astronaut"]
    tex = capture(a_img, mouth_geometry(a_face.landmarks, a_img.shape[:2]), mouth_colours(a_img, a_face.landmarks).lip)
    assert tex is not None
    colours = mouth_colours(img, face.landmarks)
    scale = mouth_geometry(face.landmarks, img.shape[:2]).frame.scale
    again = paint_interior(before.copy(), warp, colours, scale, tex, seed=1)
    assert np.array_equal(before, again)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(luma(a), luma(b))[0, 1])


@pytest.mark.parametrize("factor", [1.0, 1.3])
def test_astronaut_keeps_her_own_teeth(faces, factor):
    img, face = faces["astronaut"]
    lm = face.landmarks
    source_gap = source_opening(img, face)
    assert source_gap > 0.1  # teeth show in the photo
    geo = mouth_geometry(lm, img.shape[:2])
    _, real, warp, _ = open_mouth(img, face, source_gap * factor)
    _, paint, _, _ = open_mouth(img, face, source_gap * factor, real=False)
    x0, y0, x1, y1 = geo.roi
    # The source's teeth: inside its inner-lip polygon, in the upper part (where teeth stay attached).
    poly = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(poly, [np.round(lm[list(R.LIPS_INNER)]).astype(np.int32)], 1)
    top = poly[y0:y1, x0:x1] & (warp.interior > 0.99) & (warp.depth < 0.6)
    assert top.sum() > 40
    src = img[y0:y1, x0:x1][top > 0]
    c_real, c_paint = _corr(real[top > 0], src), _corr(paint[top > 0], src)
    assert c_real > 0.7 and c_real > c_paint + 0.25, (c_real, c_paint)
    if factor > 1:  # wider than the source: darkness below her teeth, not more teeth
        low = (warp.interior > 0.99) & (warp.depth > 0.85) & (np.abs(warp.across) < 0.3)
        assert low.sum() > 5
        assert luma(real[low]).mean() < 0.6 * luma(src).mean()


def _renderer(img, face, model, opens):
    n = len(opens)
    z = np.zeros(n, np.float32)
    track = MouthTrack(25, np.asarray(opens, np.float32), z, z, np.ones(n, bool), [], "acoustic")
    plan = RenderPlan(model=model, size=(img.shape[1], img.shape[0]), fps=25, n_frames=n,
                      speakers=[Speaker(track, face if model != "lipsync-video" else None)], seed=1)
    r = BuiltinRenderer(plan)
    r.motion = None  # keep the head still so frames compare pixel for pixel
    return r


def test_dub_bank_is_bounded_and_picks_the_nearest_opening(faces):
    img, face = faces["astronaut"]
    geo = mouth_geometry(face.landmarks, img.shape[:2])
    lip = mouth_colours(img, face.landmarks).lip
    with FaceAnalyzer() as fa:
        frames = []
        for gap in np.linspace(0.07, 0.26, 12):  # source frames opening by different amounts
            w = mouth_warp(geo, MouthShape(gap=float(gap)))
            x0, y0, x1, y1 = geo.roi
            frame = img.copy()
            frame[y0:y1, x0:x1] = cv2.remap(img, w.map_x, w.map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            found = fa.detect(frame)
            frames.append((frame, found[0]))
    bank = InteriorBank()
    for frame, f in frames:
        bank.add(frame, mouth_geometry(f.landmarks, frame.shape[:2]), lip)
    assert 3 <= len(bank) <= BANK_SIZE
    openings = sorted(t.opening for t in bank.slots.values())
    want = (openings[0] + openings[1]) / 2
    assert bank.nearest(want).opening == openings[1]  # the next wider: no paint needed
    assert bank.nearest(1.0).opening == openings[-1]
    # Colour match: the same interior under a dimmer light comes out dimmer by the same factor.
    tex = bank.nearest(0.15)
    across = np.linspace(-0.5, 0.5, 21)[None, :].repeat(5, 0)
    dist = np.linspace(1, 4, 5)[:, None].repeat(21, 1)
    bright, _ = sample(tex, across, dist, tex.scale, tex.lip)
    dim, _ = sample(tex, across, dist, tex.scale, tex.lip * 0.8)
    assert np.allclose(dim, bright * 0.8, atol=1.0)


def test_dub_uses_the_source_frames_own_mouth(faces):
    """A dub frame whose speaker shows teeth keeps them (rendered through the engine)."""
    img, face = faces["astronaut"]
    gap = source_opening(img, face)
    out_real = _renderer(img, face, "lipsync-video", [gap / MAX_GAP]).render(img, 0, [face])
    geo = mouth_geometry(face.landmarks, img.shape[:2])
    x0, y0, x1, y1 = geo.roi
    poly = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(poly, [np.round(face.landmarks[list(R.LIPS_INNER)]).astype(np.int32)], 1)
    sel = poly > 0
    _, paint, _, _ = open_mouth(img, face, gap, real=False)
    painted = img.copy()
    painted[y0:y1, x0:x1] = paint
    c_real, c_paint = _corr(out_real[sel], img[sel]), _corr(painted[sel], img[sel])
    assert c_real > 0.7 and c_real > c_paint + 0.25, (c_real, c_paint)
