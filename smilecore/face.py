"""The one face record: where a face is, and what :func:`smilecore.smile` did to it.

:func:`smilecore.detect_faces` fills the detection fields (``box``, ``landmarks``, ``score``,
``index``); :func:`smilecore.smile` adds the rest (``edited``/``reason``, the alignment, the
changed region and its feather weights, and with ``debug=True`` the crop and the network's
output).  :meth:`Face.to_dict` is the only place a face becomes JSON: ``smile --json``,
``smile detect --json`` and the worker's replies all print it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .align import Alignment
from .model import ModelOutput

#: A face's JSON fields, in the order they are printed (docs/cli.md, docs/worker-protocol.md).
JSON_FIELDS = ("index", "box", "score", "edited", "reason")
#: The fields of a face that was only detected (``smile detect --json``).
DETECTED_FIELDS = ("index", "box", "score")


@dataclass
class Face:
    """A face in photo pixel coordinates and what was done to it."""

    box: tuple[int, int, int, int]  #: x0, y0, x1, y1 (exclusive end), clipped to the photo
    landmarks: np.ndarray  #: (5, 2) float64, dlib 5-point order (see smilecore.align)
    score: float  #: detector confidence (BlazeFace probability, 0..1)
    index: int = 0  #: position in the detection order (largest face first)
    facing: float = 1.0  #: how squarely it looks at the camera (1 facing it, below 0 a profile: landmarks.Detection.facing)
    edited: bool = False
    reason: str | None = None  #: why it was not edited (None when it was, or before smile())
    alignment: Alignment | None = None  #: photo -> crop transform, once the face was sent to the network
    region: tuple[int, int, int, int] | None = None  #: x0, y0, x1, y1 (exclusive) of the photo pixels changed
    weight: np.ndarray | None = None  #: float32 (y1-y0, x1-x0) over ``region``: how strongly each pixel changed
    crop: np.ndarray | None = None  #: aligned input crop (only with ``debug=True``)
    output: ModelOutput | None = None  #: network output for this face, batch of 1 (only with ``debug=True``)

    @property
    def size(self) -> int:
        """Side of the detection box in photo pixels."""
        return int(max(self.box[2] - self.box[0], self.box[3] - self.box[1]))

    def to_dict(self, fields: Sequence[str] = JSON_FIELDS) -> dict:
        """The face as JSON-ready values: ``fields`` (a subset of :data:`JSON_FIELDS`), in that
        order; the box as whole pixels, the score rounded to 3 decimals."""
        values = {
            "index": int(self.index),
            "box": [int(v) for v in self.box],
            "score": round(float(self.score), 3),
            "edited": bool(self.edited),
            "reason": self.reason,
        }
        return {k: values[k] for k in fields}


def smaller_than_asked(min_face: int) -> str:
    """The reason of a face left as it is because its box is smaller than ``min_face`` pixels."""
    return f"smaller than the smallest face asked for ({min_face} px)"
