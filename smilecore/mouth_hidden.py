"""Is the mouth hidden? A hand, a face mask, a microphone or a cup in front of it.

The face mesh places the lips even where something covers them, and the smile network would then
draw lips and teeth on the hand or the mask. This module reads, from a face's aligned crop and its
mesh landmarks, how likely it is that the mouth is covered: a small network (one hidden layer of 64
units, run in NumPy) on the texture, light and colour of a window around the mouth (:func:`features`),
trained by ``python -m training mouth-hidden`` on the train split's faces with occluders of many
shapes, colours and textures pasted over their mouths (the README's "Mouths that something covers"
has how it was measured). The engine leaves a face whose mouth reads as hidden as it is
(:data:`smilecore.strength.MOUTH_HIDDEN`).

The weights (``mouth-hidden.json`` in ``smilecore/models/``, sha256 checked on load) were fitted on
faces of ``../shared/data/``: research / non-commercial use, like the smile model (MODEL_CARD.md).
"""
from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import cv2
import numpy as np

from .blazeface import MODELS_DIR, verify_file
from .mesh_points import EYE_CORNERS, LIP_MIDDLE, MOUTH_CORNERS

#: The weights file and its sha256 (written by ``python -m training mouth-hidden``).
WEIGHTS_FILE = "mouth-hidden.json"
WEIGHTS_SHA256 = "e4eaa0460aa78bd3b2ed186053fb9fb740e550b0c1b2f3649f303bf8acea4475"
#: A face whose mouth reads hidden with at least this probability is left as it is (0.8 since the
#: weights of the fortieth session, which count a third of the lips covered as hidden; kept for the
#: forty-first's, which also count a finger across both lips: the README's "Mouths that something covers").
HIDDEN_AT = 0.8

#: The window around the mouth: its size in eye distances (width, height), the pixels it is
#: resampled to (width, height), and the HOG cell side and orientation bins.
WINDOW = (1.3, 0.7)
PIXELS = (48, 24)
CELL = 8
BINS = 9
#: The grid of the window's light and colour statistics (rows, columns).
GRID = (2, 4)
#: The skin the window is compared with: a box under each eye, in eye distances from the eye's
#: centre (x0, y0, x1, y1; x towards the face's side).
CHEEK = (-0.15, 0.35, 0.15, 0.6)
#: Luma weights (ITU-R 601).
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _window(img: np.ndarray, centre: np.ndarray, size: tuple[float, float], pixels: tuple[int, int]) -> np.ndarray:
    """The axis-aligned box of ``size`` (crop pixels) around ``centre`` of ``img`` (uint8), resampled to
    ``pixels`` (width, height) as float32, with area averaging where it shrinks. Only the box (and a
    margin) is read: the crop's mirror image beyond its edge, as smilecore.align.extract_crop pads."""
    sx, sy = size[0] / pixels[0], size[1] / pixels[1]
    k = int(round(sx)) if sx > 1.5 else 1  # shrink first so that the sampling averages the pixels between samples
    h, w = img.shape[:2]
    m = k + 2
    cx, cy = float(centre[0]), float(centre[1])
    x0 = min(max(math.floor(cx - size[0] / 2) - m, 0), w - 1)
    y0 = min(max(math.floor(cy - size[1] / 2) - m, 0), h - 1)
    x1 = min(max(math.ceil(cx + size[0] / 2) + m + 1, x0 + 1), w)
    y1 = min(max(math.ceil(cy + size[1] / 2) + m + 1, y0 + 1), h)
    src = img[y0:y1, x0:x1].astype(np.float32)
    if k > 1:
        src = cv2.blur(src, (k, k), borderType=cv2.BORDER_REFLECT_101)
    mat = np.array([[sx, 0.0, cx - size[0] / 2 + sx / 2 - 0.5 - x0], [0.0, sy, cy - size[1] / 2 + sy / 2 - 0.5 - y0]])
    return cv2.warpAffine(src, mat, pixels, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT_101)


@functools.lru_cache(maxsize=4)
def _cell_index(h: int, w: int) -> np.ndarray:
    """The :data:`CELL`-pixel cell of each pixel of an (h, w) window, row by row, as a flat index."""
    cx = w // CELL
    return (np.arange(h)[:, None] // CELL * cx + np.arange(w)[None, :] // CELL).ravel()


def _median(x: np.ndarray) -> np.ndarray:
    """``np.median(x, axis=0)``, for this module's small arrays (the same numbers, less overhead)."""
    v = np.sort(x, axis=0)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def _hog(grey: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """Orientation histograms (:data:`BINS` over 0–180°) of ``grey``'s gradients ``gx``, ``gy`` (3 × 3
    Sobel) in :data:`CELL`-pixel cells, each cell's histogram over the window's mean gradient
    magnitude (so contrast counts, and a smooth covering reads as little texture), square-rooted."""
    mag = np.hypot(gx, gy)
    ang = (np.arctan2(gy, gx) % np.pi) * (BINS / np.pi)
    lo = np.floor(ang).astype(np.int64) % BINS
    frac = ang - np.floor(ang)
    h, w = grey.shape
    cell = _cell_index(h, w)
    n = (h // CELL) * (w // CELL) * BINS
    hist = (np.bincount(cell * BINS + lo.ravel(), (mag * (1 - frac)).ravel(), n)
            + np.bincount(cell * BINS + (lo.ravel() + 1) % BINS, (mag * frac).ravel(), n))
    return np.sqrt(hist / (mag.mean() * CELL * CELL + 1e-3))


def _cells(img: np.ndarray) -> np.ndarray:
    """Means of ``img`` (H, W[, C]) over the :data:`GRID`, row by row: (cells, C)."""
    h, w = img.shape[:2]
    a = img.reshape(GRID[0], h // GRID[0], GRID[1], w // GRID[1], -1)
    return a.mean(axis=(1, 3)).reshape(GRID[0] * GRID[1], -1)


def _scale_centre(landmarks: np.ndarray) -> tuple[float, np.ndarray, list[np.ndarray]]:
    """The eye distance, the mouth's centre and the eye centres of mesh ``landmarks`` (468, 2)."""
    p = np.asarray(landmarks, np.float64)
    eyes = [(p[a] + p[b]) / 2 for a, b in EYE_CORNERS]
    scale = max(float(np.linalg.norm(eyes[0] - eyes[1])), 4.0)
    centre = (p[MOUTH_CORNERS[0]] + p[MOUTH_CORNERS[1]] + p[LIP_MIDDLE[0]] + p[LIP_MIDDLE[1]]) / 4
    return scale, centre, eyes


def window_box(landmarks: np.ndarray) -> np.ndarray:
    """(4,) x0, y0, x1, y1 of the window :func:`features` reads, in the crop's pixels, for mesh
    ``landmarks`` (468, 2)."""
    scale, centre, _ = _scale_centre(landmarks)
    half = np.array([WINDOW[0], WINDOW[1]]) * scale / 2
    return np.concatenate([centre - half, centre + half])


def in_photo(box: np.ndarray, inverse: np.ndarray, shape: tuple[int, int]) -> bool:
    """Whether the crop ``box`` (x0, y0, x1, y1; :func:`window_box`) lies inside a photo of ``shape``
    (height, width), ``inverse`` (2×3) taking crop pixels to photo pixels. Where it does not, the crop
    shows the photo's mirror image there (smilecore.align.extract_crop), which no reading can trust."""
    x0, y0, x1, y1 = box
    corners = np.array([[x0, y0, 1.0], [x1, y0, 1.0], [x0, y1, 1.0], [x1, y1, 1.0]]) @ np.asarray(inverse, np.float64).T
    h, w = shape[:2]
    return bool((corners[:, 0] >= -0.5).all() and (corners[:, 0] <= w - 0.5).all()
                and (corners[:, 1] >= -0.5).all() and (corners[:, 1] <= h - 0.5).all())


def features(crop: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The features (float32, 1-D) of the mouth window of ``crop`` (uint8 RGB aligned crop) with mesh
    ``landmarks`` (468, 2) in its pixels: the window's orientation histograms, its gradient energy
    and light against the cheeks', its colour (chromaticity) against the cheeks', by grid cell, and
    how wide and how open the mesh reads the mouth (teeth in an open mouth are bright and smooth too)."""
    scale, centre, eyes = _scale_centre(landmarks)
    rgb = np.ascontiguousarray(crop)
    win = _window(rgb, centre, (WINDOW[0] * scale, WINDOW[1] * scale), PIXELS)
    cheeks = []
    for k, eye in enumerate(eyes):
        side = -1.0 if eye[0] < centre[0] else 1.0
        x0, y0, x1, y1 = CHEEK
        box_c = eye + scale * np.array([side * (x0 + x1) / 2, (y0 + y1) / 2])
        cheeks.append(_window(rgb, box_c, ((x1 - x0) * scale, (y1 - y0) * scale), (8, 8)))
    cheek = np.concatenate([c.reshape(-1, 3) for c in cheeks])
    grey = win @ LUMA
    cheek_grey = max(float(_median(cheek @ LUMA)), 8.0)
    cheek_gx = []
    for c in cheeks:
        g = c @ LUMA
        cheek_gx.append(np.abs(cv2.Sobel(g, cv2.CV_32F, 1, 0)).mean() + np.abs(cv2.Sobel(g, cv2.CV_32F, 0, 1)).mean())
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1)
    energy = float(np.abs(gx).mean() + np.abs(gy).mean())
    chroma = win / (win.sum(-1, keepdims=True) + 24.0)
    cheek_chroma = _median(cheek / (cheek.sum(-1, keepdims=True) + 24.0))
    light = _cells(grey[..., None] / cheek_grey)[:, 0]
    spread = np.array([grey.std() / cheek_grey, np.log((energy + 1.0) / (float(np.mean(cheek_gx)) + 1.0))])
    colour = (_cells(chroma) - cheek_chroma)[:, [0, 2]].ravel() * 10.0
    p = np.asarray(landmarks, np.float64)
    width = float(np.linalg.norm(p[MOUTH_CORNERS[0]] - p[MOUTH_CORNERS[1]]))
    gap = float(np.linalg.norm(p[LIP_MIDDLE[0]] - p[LIP_MIDDLE[1]]))
    shape = np.array([width / scale, gap / max(width, 1.0)])  # where the mesh puts the lips: open or closed
    return np.concatenate([_hog(grey, gx, gy), light, spread, colour, shape]).astype(np.float32)


class HiddenMouth:
    """The fitted network: :meth:`probability` of a hidden mouth for features (standardised, one hidden
    layer of ReLU units, a logistic output)."""

    def __init__(self, path: Path | None = None):
        checked = verify_file(MODELS_DIR / WEIGHTS_FILE if path is None else Path(path), WEIGHTS_SHA256, "hidden-mouth model")
        try:
            self._load(json.loads(checked.read_text()))
        except (ValueError, KeyError, TypeError) as e:
            from .errors import ModelError

            raise ModelError(f"hidden-mouth model {checked} is not a weights file ({e})") from None

    @classmethod
    def from_weights(cls, weights: dict) -> "HiddenMouth":
        """The model of a weights dict (the file's content), unchecked: for training."""
        self = cls.__new__(cls)
        self._load(weights)
        return self

    def _load(self, d: dict) -> None:
        self.mean = np.asarray(d["mean"], np.float64)
        self.scale = np.asarray(d["scale"], np.float64)
        self.w1 = np.asarray(d["w1"], np.float64)
        self.b1 = np.asarray(d["b1"], np.float64)
        self.w2 = np.asarray(d["w2"], np.float64)
        self.b2 = float(d["b2"])
        if self.w1.shape != (len(self.mean), len(self.b1)) or self.w2.shape != self.b1.shape:
            raise ValueError("the layers' shapes do not fit together")

    def probability(self, feats: np.ndarray) -> np.ndarray:
        """(N,) probability that each row of ``feats`` (N, F) is a hidden mouth."""
        h = np.maximum(((np.asarray(feats, np.float64) - self.mean) / self.scale) @ self.w1 + self.b1, 0.0)
        z = h @ self.w2 + self.b2
        return 1.0 / (1.0 + np.exp(-np.clip(z, -40.0, 40.0)))


@functools.lru_cache(maxsize=1)
def model() -> HiddenMouth:
    """The shipped hidden-mouth model (loaded once, sha256 checked)."""
    return HiddenMouth()


def hidden(crops: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(N,) probability that the mouth is hidden, for aligned crops (N, S, S, 3) uint8 and their mesh
    landmarks (N, 468, 2)."""
    if len(crops) == 0:
        return np.zeros(0, np.float32)
    feats = np.stack([features(c, p) for c, p in zip(crops, landmarks)])
    return model().probability(feats).astype(np.float32)
