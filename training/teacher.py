"""The teacher: synthesises a smiling target from a neutral aligned crop (Eq. 2).

The face's 68 landmarks are moved by λ·Δ (Δ: the smile direction, see
``training.direction``) and the crop is warped densely so they land there.
The warp is a thin-plate spline (``training.warp``) fitted to the moved
landmarks with the crop border, the brows, the nose bridge and the outer jaw
pinned.  The spline is evaluated on a coarse grid and upsampled (the flow is
smooth), which keeps a pair at a few milliseconds.

A warp cannot show teeth.  Where the moved inner lips open the mouth wider than
it was, the teacher pastes a real open mouth from a *donor* (a smiling face of
the train split, see :class:`~training.donors.DonorBank`): the donor's mouth is warped onto the
target lip shape, its brightness is matched to the subject's lips and it is blended with
a soft inner-lip mask, which is exactly what ``Pair.mask`` returns.

Conventions (docs/model-contract.md): ``flow`` is the BACKWARD flow in crop
pixels, ``target(p) = crop(p + flow(p))`` outside the mask, channel 0 = dx,
1 = dy; ``mask`` in [0,1] marks where new appearance was synthesised.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from smilecore.align import CROP_SIZE
from smilecore.network_io import blend

from .config import TeacherConfig
from .direction import load_direction, load_real_smile
from .donors import PATCH_CORNERS, PATCH_H, PATCH_W, DonorBank
from .landmarks68 import INNER_LIPS, INNER_PAIRS, MOUTH, inner_gap, moving_weights
from .teeth import drawn_bank, hanging_lips
from .warp import landmark_flow, tps_eval, tps_fit, warp_image

#: How the landmarks move with λ: ``linear`` = λ·Δ (Eq. 1, models up to 1.2.0), ``real`` =
#: :class:`training.geometry.RealSmile` (median real smile at λ = 1, 90th percentile at 2, saturating).
GEOMETRIES = ("linear", "real")
#: Appearance fades in as the *newly opened* inner-lip gap (relative to mouth width) grows from
#: OPEN_START to OPEN_FULL (:class:`Teacher`'s default ramp, models up to 1.2.0; training takes
#: ``[teacher] open_ramp``; a short ramp keeps the mouth opaque instead of showing lips through
#: half-transparent teeth).
OPEN_START, OPEN_FULL = 0.04, 0.11


@dataclass(frozen=True)
class Pair:
    """One teacher sample at crop size S."""

    target: np.ndarray  #: uint8 [S,S,3]
    flow: np.ndarray  #: float32 [2,S,S], backward, crop px
    mask: np.ndarray  #: float32 [S,S] in [0,1]
    landmarks: np.ndarray  #: float32 [68,2], target landmark positions (crop px)
    #: float32 [2,S,S]: where each pixel under the mask was sampled in the donor patch, as
    #: ``grid_sample`` coordinates in [-1, 1] (align_corners=False); 0 where the mask is 0
    uv: np.ndarray | None = None


# ------------------------------------------------------------------ teacher


class Teacher:
    """Smile teacher: thin-plate warp along λ·Δ, plus donor mouth interiors where the mouth opens.

    ``direction``: Δ [68,2] at S = 256, or a path (default: ``training/assets/smile_direction.json``).
    ``donors``: a :class:`~training.donors.DonorBank`, a path to one, ``"drawn"`` (the one
    procedurally drawn mouth of ``training.teeth``) or ``None`` for a warp-only teacher (``mask``
    always zero).  ``keep_donors``: use only the best this many donors
    (:meth:`~training.donors.DonorBank.best`); ``donor_pool``: each paste draws from the
    this-many donors whose opening is closest to the target's.  Training builds its teachers
    from ``[teacher]`` with :func:`teacher_from_config`.
    """

    def __init__(self, direction: np.ndarray | str | Path | None = None, donors: DonorBank | str | Path | None = None,
                 reg: float = 1e-6, keep_donors: int | None = None, donor_pool: int = 24, geometry: str = "linear",
                 open_ramp: tuple[float, float] = (OPEN_START, OPEN_FULL)):
        self.open_ramp = (float(open_ramp[0]), float(open_ramp[1]))
        if not 0.0 <= self.open_ramp[0] < self.open_ramp[1]:
            raise ValueError(f"open_ramp must be two increasing numbers >= 0, not {open_ramp!r}")
        if geometry not in GEOMETRIES:
            raise ValueError(f"teacher geometry must be one of {', '.join(GEOMETRIES)}, not {geometry!r}")
        self.geometry = geometry
        self.real_smile = None
        if geometry == "real":
            self.real_smile = load_real_smile(direction if isinstance(direction, (str, Path)) else None)
        if direction is None or isinstance(direction, (str, Path)):
            direction, _ = load_direction(direction)
        self.delta = np.asarray(direction, dtype=np.float64).reshape(68, 2)
        self.reg = float(reg)
        self.weight = moving_weights()
        if isinstance(donors, str) and donors == "drawn":
            donors = drawn_bank()
        elif isinstance(donors, (str, Path)):
            donors = DonorBank.load(donors)
        if donors is not None and keep_donors and len(donors) > int(keep_donors):
            donors = donors.best(int(keep_donors))
        self.donors = donors if donors is not None and len(donors) else None
        self.donor_pool = int(donor_pool) if donor_pool else 24

    def displacement(self, lam: float) -> np.ndarray:
        """[68,2] landmark offsets at strength ``lam`` (crop px at S = 256) before pinning:
        ``lam``·Δ (``geometry = "linear"``, Eq. 1) or the real-smile model (``"real"``)."""
        if self.real_smile is not None:
            return self.real_smile.displacement(lam)
        return lam * self.delta

    def target_landmarks(self, lm68: np.ndarray, lam: float, size: int) -> np.ndarray:
        """Where the 68 landmarks go at strength ``lam`` in a ``size``² crop (inner lips never cross;
        with the real-smile geometry lips keep their thickness as real smiles do)."""
        src = np.asarray(lm68, np.float64)
        tl = src + (size / CROP_SIZE) * self.weight[:, None] * self.displacement(lam)
        if self.real_smile is not None and lam > 0:
            tl = self.real_smile.keep_lips(src, tl)
        up, lo = INNER_PAIRS[:, 0], INNER_PAIRS[:, 1]
        crossed = tl[lo, 1] < tl[up, 1]
        if crossed.any():
            mid = 0.5 * (tl[up[crossed], 1] + tl[lo[crossed], 1])
            tl[up[crossed], 1] = mid
            tl[lo[crossed], 1] = mid
        return tl

    def backward_flow(self, lm68: np.ndarray, lam: float, size: int) -> np.ndarray:
        """Backward flow float32 [2,size,size] (target pixel -> source offset, crop px)."""
        if lam == 0.0:
            return np.zeros((2, size, size), np.float32)
        src = np.asarray(lm68, np.float64)
        return landmark_flow(src, self.target_landmarks(lm68, lam, size), size, self.reg)

    def opening(self, lm68: np.ndarray, target: np.ndarray) -> float:
        """Appearance weight in [0,1] from how far the target mouth opened beyond the source's."""
        width = max(1.0, float(np.linalg.norm(target[54] - target[48])))
        new = (inner_gap(target) - max(0.0, inner_gap(lm68))) / width
        start, full = self.open_ramp
        return float(np.clip((new - start) / (full - start), 0.0, 1.0))

    def _mouth(self, warped: np.ndarray, lm68: np.ndarray, tl: np.ndarray, alpha_max: float,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Paste a donor mouth interior into ``warped``; returns (image, mask, uv) (see :class:`Pair`)."""
        size = warped.shape[0]
        mask = np.zeros((size, size), np.float32)
        uv = np.zeros((2, size, size), np.float32)
        bank = self.donors
        width = max(1.0, float(np.linalg.norm(tl[54] - tl[48])))
        # region of the target mouth (outer lips + margin)
        lips_t = tl[MOUTH]
        x0, y0 = np.floor(lips_t.min(0) - 0.1 * width).astype(int)
        x1, y1 = np.ceil(lips_t.max(0) + 0.1 * width).astype(int) + 1
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(size, x1), min(size, y1)
        if x1 - x0 < 3 or y1 - y0 < 3:
            return warped, mask, uv
        region = warped[y0:y1, x0:x1].astype(np.float32)
        subject_gray = bool(np.abs(region[..., 0] - region[..., 2]).max() < 6)
        # colour subjects take colour donors; prefer donors whose opening ratio is close to the target's
        ratio = inner_gap(tl) / width
        d_ratio = (bank.lips[:, 16:19, 1].mean(1) - bank.lips[:, 12:15, 1].mean(1)) / (PATCH_CORNERS[1, 0] - PATCH_CORNERS[0, 0])
        cand = np.flatnonzero(~bank.gray) if not subject_gray and (~bank.gray).any() else np.arange(len(bank))
        near = cand[np.argsort(np.abs(d_ratio[cand] - ratio))[: min(self.donor_pool, len(cand))]]
        d = int(rng.choice(near))
        patch, dl = bank.patches[d], bank.lips[d].astype(np.float64)
        if bank.hanging:
            dl = hanging_lips(dl, lips_t)
        # backward map target mouth -> donor patch (spline through the 20 lip points)
        ctrl = lips_t / size
        w, a = tps_fit(ctrl, dl - lips_t, 1e-5)
        # evaluate on a half-resolution grid placed at 2k + 0.5 so a 2x resize lands on pixel centres
        hh, ww = (y1 - y0 + 1) // 2, (x1 - x0 + 1) // 2
        cy, cx = np.mgrid[0:hh, 0:ww] * 2.0 + 0.5
        pts = np.stack([cx.ravel() + x0, cy.ravel() + y0], 1)
        off = tps_eval(ctrl, w, a, pts / size).astype(np.float32).reshape(hh, ww, 2)
        off = cv2.resize(off, (2 * ww, 2 * hh), interpolation=cv2.INTER_LINEAR)[: y1 - y0, : x1 - x0]
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        mx = xs + off[..., 0]
        my = ys + off[..., 1]
        tex = cv2.remap(patch, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101).astype(np.float32)
        # soft inner-lip polygon (sub-pixel fill at 4x, feathered)
        poly = np.round((tl[INNER_LIPS] - [x0, y0]) * 16).astype(np.int32)
        fill = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(fill, [poly], 255, lineType=cv2.LINE_AA, shift=4)
        sigma = max(0.6, 0.012 * width)
        alpha = np.clip(cv2.GaussianBlur(fill.astype(np.float32) / 255.0, (0, 0), sigma), 0.0, 1.0) * alpha_max
        alpha[alpha < 1e-3] = 0.0  # exact zeros outside, so "mask == 0" means "pure warp"
        # colour match on the lips ring (outer minus inner lips), same place in both images
        ring = np.zeros_like(fill)
        cv2.fillPoly(ring, [np.round((tl[48:60] - [x0, y0]) * 16).astype(np.int32)], 255, shift=4)
        ring[fill > 0] = 0
        if subject_gray:
            tex = np.repeat(tex.mean(2, keepdims=True), 3, axis=2)
        if ring.sum() > 255 * 4:
            # one brightness gain (lighting), not per channel: lips are redder than teeth,
            # so a per-channel lip match would tint the teeth
            sel = ring > 0
            ref = bank.ring_lum if bank.ring_lum is not None else tex[sel].mean()
            gain = (region[sel].mean() + 1.0) / (ref + 1.0)
            # kept within ±15 %: the lips' brightness mostly reflects skin tone, which teeth do not follow
            tex = tex * float(np.clip(gain, 0.85, 1.15))
        out = blend(region, np.clip(tex, 0, 255), alpha[..., None])
        result = warped.copy()
        result[y0:y1, x0:x1] = np.clip(np.round(out), 0, 255).astype(np.uint8)
        mask[y0:y1, x0:x1] = alpha
        on = alpha > 0
        uv[0, y0:y1, x0:x1] = np.where(on, (mx + 0.5) / PATCH_W * 2.0 - 1.0, 0.0)
        uv[1, y0:y1, x0:x1] = np.where(on, (my + 0.5) / PATCH_H * 2.0 - 1.0, 0.0)
        return result, mask, uv

    def synthesize(self, crop: np.ndarray, lm68: np.ndarray, lam: float, rng: np.random.Generator | None = None) -> Pair:
        """Teacher target for ``crop`` (uint8 [S,S,3]) with landmarks ``lm68`` (crop px) at strength ``lam``."""
        crop = np.asarray(crop)
        if crop.ndim != 3 or crop.shape[0] != crop.shape[1] or crop.dtype != np.uint8:
            raise ValueError(f"crop must be uint8 [S,S,C], got {crop.dtype} {crop.shape}")
        size = crop.shape[0]
        lam = float(lam)
        lm68 = np.asarray(lm68, np.float64)
        mask = np.zeros((size, size), np.float32)
        uv = np.zeros((2, size, size), np.float32)
        if lam == 0.0:
            return Pair(crop.copy(), np.zeros((2, size, size), np.float32), mask, lm68.astype(np.float32), uv)
        tl = self.target_landmarks(lm68, lam, size)
        flow = self.backward_flow(lm68, lam, size)
        target = warp_image(crop, flow)
        if target.ndim == 2:
            target = target[:, :, None]
        if self.donors is not None and crop.shape[2] == 3:
            amax = self.opening(lm68, tl)
            if amax > 0.0:
                target, mask, uv = self._mouth(target, lm68, tl, amax, rng if rng is not None else np.random.default_rng(0))
        return Pair(target, flow, mask, tl.astype(np.float32), uv)


def teacher_from_config(settings: TeacherConfig, donor_path: Path, drawn: bool = False,
                        direction: np.ndarray | str | Path | None = None) -> Teacher:
    """The teacher ``settings`` describe (``[teacher]``, maybe with a stage's overrides): the drawn
    mouth when ``drawn``, else the donor bank at ``donor_path`` (warp only, with a warning, when
    that file is missing)."""
    donors: DonorBank | str | Path | None = "drawn" if drawn else donor_path
    if not drawn and not Path(donor_path).exists():
        warnings.warn(f"{donor_path} missing: warp-only teacher (run `python -m training pairs --donors`)", stacklevel=2)
        donors = None
    return Teacher(direction, donors=donors, keep_donors=settings.keep_donors, donor_pool=settings.donor_pool,
                   geometry=settings.geometry, open_ramp=settings.open_ramp)
