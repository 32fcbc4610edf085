"""Dialogue preview: the faces the pipeline will find, with the two speakers marked L and R."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import InputError

LEFT_COLOUR = (46, 204, 113)  # RGB
RIGHT_COLOUR = (52, 152, 219)
OTHER_COLOUR = (200, 200, 200)


@dataclass(frozen=True)
class FacePreview:
    image: np.ndarray  # RGB uint8 at the output size, boxes drawn
    boxes: list[tuple[int, int, int, int]]  # every face, left to right
    left: Optional[int]  # index of the left speaker's face
    right: Optional[int]


def detect_faces(image: str, resolution: str = "480p", mask_image: Optional[str] = None,
                 left_face=None, right_face=None):
    """Faces in ``image`` exactly as the pipeline sees them (resized to the output size, same detector),
    and the pair it picks (by default, or from the user's index/box choices). Returns
    (frame, faces, (left, right) or None)."""
    import cv2

    from ..face import FaceAnalyzer
    from ..media.probe import expect_kind, probe
    from ..media.video import output_size, read_image
    from ..pipeline import _load_mask, _pick_still_faces
    from ..requests import MultiRequest

    info = probe(Path(image), "image")
    expect_kind(info, "image", ("image",))
    size = output_size(info.width, info.height, resolution)
    frame = cv2.resize(read_image(Path(image), "image"), size, interpolation=cv2.INTER_AREA)
    with FaceAnalyzer() as analyzer:
        faces = analyzer.detect(frame)
    pair = None
    if len(faces) >= 2:
        mask = _load_mask(Path(mask_image), size, read_image) if mask_image else None
        # The pipeline's own default pick, so the preview never disagrees with the render.
        probe_request = MultiRequest(image=str(image), left_audio="-", right_audio="-",
                                     left_face=left_face, right_face=right_face)
        chosen = _pick_still_faces(probe_request, faces, mask, scale=size[0] / info.width)
        index = {id(face): i for i, face in enumerate(faces)}
        pair = (index[id(chosen[0])], index[id(chosen[1])])
    return frame, faces, pair


def draw_preview(frame: np.ndarray, boxes: list, left: Optional[int], right: Optional[int]) -> np.ndarray:
    """Boxes on every face: the speakers thick, labelled L and R; others thin, numbered from 1."""
    import cv2

    out = frame.copy()
    scale = max(out.shape[:2]) / 640
    for i, box in enumerate(boxes):
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        if i == left:
            colour, label, thick = LEFT_COLOUR, "L", 3
        elif i == right:
            colour, label, thick = RIGHT_COLOUR, "R", 3
        else:
            colour, label, thick = OTHER_COLOUR, str(i + 1), 1
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, max(1, round(thick * scale)))
        font_scale = 1.1 * scale if label in "LR" else 0.7 * scale
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 2)
        ty = max(th + 6, y0 - 6)
        cv2.rectangle(out, (x0, ty - th - 6), (x0 + tw + 8, ty + 4), colour, -1)
        cv2.putText(out, label, (x0 + 4, ty), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), 2, cv2.LINE_AA)
    return out


def preview(image: str, resolution: str = "480p", mask_image: Optional[str] = None,
            left: Optional[int] = None, right: Optional[int] = None) -> FacePreview:
    """The annotated preview; ``left``/``right`` override the default pair (swap, or other faces)."""
    frame, faces, pair = detect_faces(image, resolution, mask_image)
    if len(faces) < 2:
        raise InputError("image", f"found {len(faces)} face{'s' if len(faces) != 1 else ''}, dialogue needs 2")
    n = len(faces)
    left = left if left is not None and 0 <= left < n else pair[0]
    right = right if right is not None and 0 <= right < n else pair[1]
    boxes = [tuple(int(round(v)) for v in f.box) for f in faces]
    return FacePreview(draw_preview(frame, boxes, left, right), boxes, left, right)


def redraw(image: str, resolution: str, boxes: list, left: Optional[int], right: Optional[int]) -> np.ndarray:
    """Redraw the preview for a new speaker pair without detecting again."""
    import cv2

    from ..media.probe import probe
    from ..media.video import output_size, read_image

    info = probe(Path(image), "image")
    size = output_size(info.width, info.height, resolution)
    frame = cv2.resize(read_image(Path(image), "image"), size, interpolation=cv2.INTER_AREA)
    return draw_preview(frame, boxes, left, right)
