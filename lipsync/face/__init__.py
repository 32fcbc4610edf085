"""Faces: detection + 478 FaceMesh landmarks, named landmark regions, and a one-face video tracker."""

from .landmarks import Face, FaceAnalyzer
from .tracker import FaceTracker, OneEuroFilter, largest_face

__all__ = ["Face", "FaceAnalyzer", "FaceTracker", "OneEuroFilter", "largest_face"]
