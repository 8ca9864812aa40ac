"""The face's own outline: MediaPipe's face mesh (Apache-2.0) run by ONNX Runtime, and the edit
region it bounds.

The mesh network sees a face's aligned crop (the template of :mod:`smilecore.align`, resized to
192 × 192, RGB in [0, 1]) and places 468 landmarks on it; 36 of them run around the face (the
*face oval*: hairline, temples, cheeks, jaw line and chin). The ``.onnx`` file is converted from
MediaPipe's ``face_landmark.tflite`` by ``tools/convert_mediapipe.py`` and ships in
``smilecore/models/`` (licence and NOTICE there); its outputs match TFLite's to 1.4e-4 pixels.

:func:`edit_region` turns the oval into the weight field that bounds an edit in the crop: 1 well
inside the face, falling smoothly to exactly 0 at the outline, and 0 outside it, so the neck, the
collar, the hair beyond the temples and the background are never touched. Where the smile moves
the outline itself (a chin that drops as the mouth opens), the region also covers the outline's
new place, so the moved chin is shown whole rather than cut at its old line.

:func:`own_teeth` reads from the same landmarks whether the face already shows its teeth (lips
parted, bright inside them). Such a face keeps its own mouth: the engine scales the painted
mouth down by it, so the warp widens the real teeth instead of replacing them with the
network's.

:meth:`FaceMesh.read` also asks :mod:`smilecore.mouth_hidden` whether something covers the mouth (a
hand, a face mask, a microphone), from the window around the mouth these landmarks place.

:func:`smile_level` reads how far the face already smiles (0: a typical neutral face, 1: a typical
real smile), from the width of its mouth and the lift of its corners; :mod:`smilecore.strength`
turns it into the strength that face gets.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from . import mouth_hidden
from .blazeface import MODELS_DIR, helper_session, verify_file
from .mesh_points import EYE_CORNERS, LIP_MIDDLE, MOUTH_CORNERS

#: The converted face mesh and its sha256 (checked on load).
MESH_FILE = "facemesh.onnx"
MESH_SHA256 = "0f3751bdf8bf2a31ebf0f48e3db8ddf37cc7fcb83afa0c5619368858ddb9bfae"
#: Input side the mesh network was trained at.
MESH_SIDE = 192

#: The face oval's landmarks in order around the face, starting at the top of the forehead
#: and going towards the image's left (MediaPipe's face mesh topology).
FACE_OVAL = (10, 109, 67, 103, 54, 21, 162, 127, 234, 93, 132, 58, 172, 136, 150, 149, 176, 148,
             152, 377, 400, 378, 379, 365, 397, 288, 361, 323, 454, 356, 389, 251, 284, 332, 297, 338)

#: The inner lip line, around the mouth's opening (upper lip left to right, then lower lip back).
INNER_LIPS = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
#: Own teeth shown: the opening between the inner lips (/ mouth width) ramps the answer from 0 to
#: 1 over OPEN_RAMP, and the brightness inside them (75th percentile of grey / the median of the
#: face inside its outline) over BRIGHT_RAMP: a dark opening (no teeth, a tongue) is not kept.
OPEN_RAMP = (0.06, 0.12)
BRIGHT_RAMP = (0.80, 0.95)

#: The face's own smile (:func:`smile_level`) is measured by its mouth width and by how far its
#: corners sit above the middle of the lips, both divided by the distance between the eye
#: centres: the medians of neutral faces and of real smiles, and the spread of each measure
#: around its class's median (train split of ../shared/data, 1,200 faces of each, measured by
#: ``python -m training smile-level``).
LEVEL_NEUTRAL = (0.8033, 0.0087)
LEVEL_SMILE = (0.9762, 0.0883)
LEVEL_SPREAD = (0.0806, 0.0433)

#: Width of the soft border inside the outline, as a fraction of the crop side (the template's
#: eye centres are 0.30 apart, so this is about a sixth of the distance between the eyes).
BORDER = 0.05


class FaceMesh:
    """The face mesh network: :meth:`outline` gives the face oval of aligned crops."""

    def __init__(self, path: Path | None = None, threads: int | None = None):
        checked = verify_file(MODELS_DIR / MESH_FILE if path is None else Path(path), MESH_SHA256, "face landmark model")
        # one thread: this small network takes 1.5–1.7 ms on it (1.3 ms on two), and no thread
        # pool is left spinning after it to take the cores from the compositing that follows
        self.session = helper_session(checked, threads or 1)

    def landmarks(self, crops: np.ndarray) -> np.ndarray:
        """(N, 468, 2) landmarks in crop pixels (OpenCV's convention: 0 is the centre of the first
        pixel) of ``crops``: (N, S, S, 3) uint8 RGB aligned crops of any side S."""
        n, s = crops.shape[0], crops.shape[1]
        if s == MESH_SIDE:
            small = crops
        else:
            small = np.stack([cv2.resize(c, (MESH_SIDE, MESH_SIDE), interpolation=cv2.INTER_AREA) for c in crops])
        x = small.astype(np.float32) * np.float32(1 / 255)
        pts, _presence = self.session.run(None, {"input": x})
        # the network's coordinates run from 0 at the first pixel's outer edge
        return pts.reshape(n, 468, 3)[..., :2].astype(np.float64) * (s / MESH_SIDE) - 0.5

    def read(self, crops: np.ndarray) -> "Reading":
        """What the engine reads from each crop's landmarks (:class:`Reading`)."""
        pts = self.landmarks(crops)
        return Reading(pts[:, FACE_OVAL], np.array([own_teeth(c, p) for c, p in zip(crops, pts)], np.float32),
                       smile_level(pts).astype(np.float32), mouth_hidden.hidden(crops, pts),
                       np.array([mouth_hidden.window_box(p) for p in pts]).reshape(-1, 4))


class Reading(NamedTuple):
    """What :meth:`FaceMesh.read` finds on N aligned crops."""

    outline: np.ndarray  #: (N, 36, 2) the face oval (:data:`FACE_OVAL`) in crop pixels
    teeth: np.ndarray  #: (N,) how far each face shows its own teeth, 0..1 (:func:`own_teeth`)
    level: np.ndarray  #: (N,) how far each face already smiles (:func:`smile_level`)
    hidden: np.ndarray  #: (N,) how likely it is that something covers the mouth (:mod:`smilecore.mouth_hidden`)
    mouth_box: np.ndarray  #: (N, 4) x0, y0, x1, y1 of the window that reading looks at, in crop pixels

    def mouth_covered(self, k: int, inverse: np.ndarray, shape: tuple[int, int]) -> bool:
        """Whether face ``k``'s mouth reads as covered: :attr:`hidden` at or above
        :data:`smilecore.mouth_hidden.HIDDEN_AT`, its window inside the picture of ``shape`` whose pixels
        ``inverse`` (2×3, crop to picture) maps the crop to (a window partly outside it reads the picture's
        mirror image, and is not judged)."""
        return bool(self.hidden[k] >= mouth_hidden.HIDDEN_AT) and mouth_hidden.in_photo(self.mouth_box[k], inverse, shape)


@functools.lru_cache(maxsize=1)
def network() -> FaceMesh:
    """The shipped face mesh (loaded once, sha256 checked)."""
    return FaceMesh()


def _ramp(x: float, lo_hi: tuple[float, float]) -> float:
    return float(np.clip((x - lo_hi[0]) / (lo_hi[1] - lo_hi[0]), 0.0, 1.0))


def own_teeth(crop: np.ndarray, landmarks: np.ndarray) -> float:
    """How far (0..1) the face in ``crop`` (uint8 RGB) with mesh ``landmarks`` (468, 2) already shows
    its teeth: lips parted (:data:`OPEN_RAMP`) and bright inside (:data:`BRIGHT_RAMP`)."""
    width = float(np.linalg.norm(landmarks[MOUTH_CORNERS[0]] - landmarks[MOUTH_CORNERS[1]]))
    gap = float(np.linalg.norm(landmarks[LIP_MIDDLE[0]] - landmarks[LIP_MIDDLE[1]]))
    opened = _ramp(gap / max(width, 1e-6), OPEN_RAMP)
    if opened == 0.0:
        return 0.0
    grey = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2GRAY)
    inside, face = np.zeros(grey.shape, np.uint8), np.zeros(grey.shape, np.uint8)
    cv2.fillPoly(inside, [np.rint(landmarks[list(INNER_LIPS)]).astype(np.int32)], 1)
    cv2.fillPoly(face, [np.rint(landmarks[list(FACE_OVAL)]).astype(np.int32)], 1)
    if inside.sum() < 5 or face.sum() < 5:
        return 0.0
    bright = float(np.percentile(grey[inside > 0], 75)) / max(float(np.median(grey[face > 0])), 1.0)
    return opened * _ramp(bright, BRIGHT_RAMP)


def mouth_shape(landmarks: np.ndarray) -> np.ndarray:
    """(..., 2): the mouth's width and how far its corners sit above the middle of the lips, both over
    the distance between the eye centres, from mesh ``landmarks`` (..., 468, 2)."""
    p = np.asarray(landmarks, np.float64)
    eyes = [(p[..., a, :] + p[..., b, :]) / 2 for a, b in EYE_CORNERS]
    scale = np.maximum(np.linalg.norm(eyes[0] - eyes[1], axis=-1), 1e-6)
    left, right = p[..., MOUTH_CORNERS[0], :], p[..., MOUTH_CORNERS[1], :]
    middle = (p[..., LIP_MIDDLE[0], :] + p[..., LIP_MIDDLE[1], :]) / 2
    return np.stack([np.linalg.norm(left - right, axis=-1) / scale,
                     (middle[..., 1] - (left[..., 1] + right[..., 1]) / 2) / scale], -1)


def smile_level(landmarks: np.ndarray) -> np.ndarray:
    """How far faces with mesh ``landmarks`` (..., 468, 2) already smile: 0 for the median neutral
    face, 1 for the median real smile (:data:`LEVEL_NEUTRAL`, :data:`LEVEL_SMILE`), on the line
    between them in :func:`mouth_shape`, each measure weighted by how clearly it tells the two apart
    (its difference over its squared spread). Broad real smiles read about 1.6 (90th percentile);
    neutral faces spread over about ±0.4."""
    neutral, smile = np.array(LEVEL_NEUTRAL), np.array(LEVEL_SMILE)
    weight = (smile - neutral) / np.array(LEVEL_SPREAD) ** 2
    return (mouth_shape(landmarks) - neutral) @ weight / float((smile - neutral) @ weight)


def painted_mask(mask: np.ndarray, teeth: float | np.ndarray) -> np.ndarray:
    """The network's ``mask`` (any shape, or [N, ...] with ``teeth`` (N,)) for a face that shows
    its own teeth this far (:func:`own_teeth`): scaled down by it, so those teeth are kept."""
    t = np.asarray(teeth, np.float32)
    return mask * (1.0 - t.reshape(t.shape + (1,) * (np.ndim(mask) - t.ndim)))


def _moved(points: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Where the edit shows ``points`` (crop pixels): the flow is backward (the output at p shows
    the input at p + flow(p)), so a point c is shown at c' with c' + flow(c') = c; two fixed-point
    steps from c' = c."""
    fx = np.ascontiguousarray(flow[0], dtype=np.float32)
    fy = np.ascontiguousarray(flow[1], dtype=np.float32)
    q = points.astype(np.float32)
    for _ in range(2):
        mx, my = q[:, 0].reshape(1, -1), q[:, 1].reshape(1, -1)
        dx = cv2.remap(fx, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).ravel()
        dy = cv2.remap(fy, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).ravel()
        q = points.astype(np.float32) - np.stack([dx, dy], axis=1)
    return q.astype(np.float64)


def edit_region(outline: np.ndarray, size: int, flow: np.ndarray | None = None) -> np.ndarray:
    """The (size, size) float32 weight field of a face's edit in its crop.

    ``outline`` (K, 2): the face oval in crop pixels; ``flow`` (2, size, size): the network's
    backward flow, whose moved outline is included. Inside the outline(s) the weight rises from
    0 at the border to 1 at :data:`BORDER` × ``size`` inward (smoothstep); it is exactly 0 on
    and outside the border.
    """
    shift = 4  # sub-pixel vertices for fillPoly
    mask = np.zeros((size, size), np.uint8)
    polys = [outline] if flow is None else [outline, _moved(outline, flow)]
    for poly in polys:
        # pixel centres are integers here; fillPoly fills the pixels whose centres lie inside
        pts = np.rint(np.asarray(poly, np.float64) * (1 << shift)).astype(np.int32)
        cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=shift)
    # distance (crop pixels) from each inside pixel to the nearest outside one, taken over the box of the
    # inside pixels grown by one: no outside pixel beyond that ring is nearer than the ring itself
    weight = np.zeros((size, size), np.float32)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return weight
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    dist = cv2.distanceTransform(np.pad(mask[box], 1), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    t = np.clip((dist - 0.5) / (BORDER * size), 0.0, 1.0)
    weight[box] = t * t * (3.0 - 2.0 * t)
    return weight
