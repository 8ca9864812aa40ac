"""The teacher: synthesises a smiling target from a neutral aligned crop (Eq. 2).

The face's 68 landmarks are moved by λ·Δ (Δ: the smile direction, see
``training.direction``) and the crop is warped densely so they land there.
The warp is a thin-plate spline (own numpy implementation) fitted to the moved
landmarks with the crop border, the brows, the nose bridge and the outer jaw
pinned.  The spline is evaluated on a coarse grid and upsampled (the flow is
smooth), which keeps a pair at a few milliseconds.

A warp cannot show teeth.  Where the moved inner lips open the mouth wider than
it was, the teacher pastes a real open mouth from a *donor* (a smiling face of
the train split, see :class:`DonorBank`): the donor's mouth is warped onto the
target lip shape, its brightness is matched to the subject's lips and it is blended with
a soft inner-lip mask, which is exactly what ``Pair.mask`` returns.

Conventions (docs/model-contract.md): ``flow`` is the BACKWARD flow in crop
pixels, ``target(p) = crop(p + flow(p))`` outside the mask, channel 0 = dx,
1 = dy; ``mask`` in [0,1] marks where new appearance was synthesised.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from smilecore.align import CROP_SIZE

from .direction import load_direction
from .landmarks68 import BROWS, INNER_LIPS, JAW, MOUTH

#: Landmarks held still: brows, nose bridge (27-30) and the outer jaw near the ears.
PINNED = np.concatenate([BROWS, np.arange(27, 31), JAW[:4], JAW[-4:]])
#: How the landmarks move with λ: ``linear`` = λ·Δ (Eq. 1, models up to 1.2.0), ``real`` =
#: :class:`training.geometry.RealSmile` (median real smile at λ = 1, 90th percentile at 2, saturating).
GEOMETRIES = ("linear", "real")


def moving_weights() -> np.ndarray:
    """[68]: 1 for the landmarks the teacher moves, 0 for :data:`PINNED` ones."""
    weight = np.ones(68)
    weight[PINNED] = 0.0
    return weight
#: Upper/lower inner-lip landmark pairs (upper, lower).
INNER_PAIRS = np.array([[61, 67], [62, 66], [63, 65]])
#: Canonical donor mouth patch: width, height, and where the mouth corners (48, 54) go.
PATCH_W, PATCH_H = 128, 96
PATCH_CORNERS = np.array([[24.0, 48.0], [104.0, 48.0]])
#: Appearance fades in as the *newly opened* inner-lip gap (relative to mouth width) grows from
#: OPEN_START to OPEN_FULL (the default of ``[teacher] open_ramp``; a short ramp keeps the mouth opaque
#: instead of showing lips through half-transparent teeth).
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


# ------------------------------------------------------------------ thin-plate spline


def _tps_kernel(r2: np.ndarray) -> np.ndarray:
    """Thin-plate radial basis U = r² log r (written with r²)."""
    return 0.5 * r2 * np.log(np.maximum(r2, 1e-20))


def tps_fit(ctrl: np.ndarray, values: np.ndarray, reg: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Thin-plate spline through ``values`` [K,d] at ``ctrl`` [K,2] (unit-scaled coordinates).

    Returns radial weights [K,d] and affine part [3,d].  ``reg`` > 0 smooths.
    """
    k = len(ctrl)
    dx = ctrl[:, None, 0] - ctrl[None, :, 0]
    dy = ctrl[:, None, 1] - ctrl[None, :, 1]
    a = np.zeros((k + 3, k + 3))
    a[:k, :k] = _tps_kernel(dx * dx + dy * dy) + reg * np.eye(k)
    a[:k, k] = 1.0
    a[:k, k + 1 :] = ctrl
    a[k, :k] = 1.0
    a[k + 1 :, :k] = ctrl.T
    b = np.zeros((k + 3, values.shape[1]))
    b[:k] = values
    sol = _small_solve(a, b)
    return sol[:k], sol[k:]


def _small_solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve a small dense system on one thread.

    A multi-threaded LAPACK spends far longer waking its threads than solving a
    100x100 system, and on a busy machine that costs tens of milliseconds; torch's
    solver, held to one thread for the call, takes well under one.
    """
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is part of the [train] extra
        return np.linalg.solve(a, b)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return torch.linalg.solve(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    finally:
        torch.set_num_threads(n)


def tps_basis(pts: np.ndarray, ctrl: np.ndarray) -> np.ndarray:
    """Radial basis matrix [M,K] between ``pts`` [M,2] and ``ctrl`` [K,2]."""
    dx = pts[:, 0:1] - ctrl[None, :, 0]
    dy = pts[:, 1:2] - ctrl[None, :, 1]
    return _tps_kernel((dx * dx + dy * dy).astype(np.float32))


def tps_eval(ctrl: np.ndarray, weights: np.ndarray, affine: np.ndarray, pts: np.ndarray, basis: np.ndarray | None = None) -> np.ndarray:
    """Evaluate a fitted spline at ``pts`` [M,2] (same unit scale as ``ctrl``); ``basis`` may be precomputed."""
    if basis is None:
        basis = tps_basis(pts, ctrl)
    return basis @ weights + affine[0] + pts @ affine[1:]


@lru_cache(maxsize=8)
def _border_pins(size: int, per_side: int = 8) -> np.ndarray:
    step = size / per_side
    t = -0.5 + step * np.arange(per_side)
    lo, hi = -0.5, size - 0.5
    return np.concatenate(
        [np.stack([t, np.full_like(t, lo)], 1), np.stack([np.full_like(t, hi), t], 1),
         np.stack([t + step, np.full_like(t, hi)], 1), np.stack([np.full_like(t, lo), t + step], 1)]
    )


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[int, np.ndarray]:
    """Coarse evaluation grid (g×g points, placed so ``cv2.resize`` g→size interpolates exactly)."""
    g = int(np.clip(size // 6, 8, 32))
    c = (np.arange(g) + 0.5) * size / g - 0.5
    gx, gy = np.meshgrid(c, c)
    return g, np.stack([gx.ravel(), gy.ravel()], 1)


@lru_cache(maxsize=8)
def _pin_basis(size: int) -> np.ndarray:
    """Basis between the coarse grid and the border pins (fixed per size), unit-scaled."""
    _, grid = _grid(size)
    return tps_basis(grid / size, _border_pins(size) / size)


@lru_cache(maxsize=8)
def _pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    xs = np.arange(size, dtype=np.float32)
    return np.meshgrid(xs, xs)


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 similarity mapping two points ``src`` [2,2] onto ``dst`` [2,2]."""
    s = complex(*(src[1] - src[0]))
    d = complex(*(dst[1] - dst[0]))
    z = d / s
    t = complex(*dst[0]) - z * complex(*src[0])
    return np.array([[z.real, -z.imag, t.real], [z.imag, z.real, t.imag]])


def inner_gap(lm68: np.ndarray) -> float:
    """Mean vertical opening between the upper and lower inner lips (crop px)."""
    return float(np.mean(lm68[INNER_PAIRS[:, 1], 1] - lm68[INNER_PAIRS[:, 0], 1]))


def _controls(src: np.ndarray, dst: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Spline control points (target positions) and values (source − target); near-coincident
    inner-lip pairs are merged so a closed mouth does not make the solve ill-posed."""
    keep = np.ones(68, bool)
    pts, vals = [], []
    eps = 0.012 * size
    for u, l in INNER_PAIRS:
        if np.linalg.norm(dst[u] - dst[l]) < eps:
            keep[[u, l]] = False
            pts.append(0.5 * (dst[u] + dst[l]))
            vals.append(0.5 * ((src[u] - dst[u]) + (src[l] - dst[l])))
    ctrl = np.concatenate([dst[keep], np.array(pts).reshape(-1, 2)])
    val = np.concatenate([src[keep] - dst[keep], np.array(vals).reshape(-1, 2)])
    return ctrl, val


def landmark_flow(src: np.ndarray, dst: np.ndarray, size: int, reg: float = 1e-6) -> np.ndarray:
    """Backward flow float32 [2,size,size] of the thin-plate spline that takes the 68 landmarks
    ``src`` to ``dst`` (crop px) with the crop border pinned: ``warped(p) = image(p + flow(p))``."""
    lm_ctrl, lm_val = _controls(np.asarray(src, np.float64), np.asarray(dst, np.float64), size)
    pins = _border_pins(size)
    ctrl = np.concatenate([lm_ctrl, pins]) / size
    vals = np.concatenate([lm_val, np.zeros_like(pins)])
    w, a = tps_fit(ctrl, vals, reg)
    g, grid = _grid(size)
    gu = grid / size
    basis = np.concatenate([tps_basis(gu, ctrl[: len(lm_ctrl)]), _pin_basis(size)], axis=1)
    coarse = tps_eval(ctrl, w, a, gu, basis).astype(np.float32).reshape(g, g, 2)
    dense = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(dense.transpose(2, 0, 1))


def warp_image(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` (uint8 or float, [S,S] or [S,S,C]) resampled along a backward ``flow`` [2,S,S]."""
    px, py = _pixel_grid(image.shape[0])
    return cv2.remap(image, px + flow[0], py + flow[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)


# ------------------------------------------------------------------ donors


@dataclass
class DonorBank:
    """Open smiling mouths in a canonical patch frame (mouth corners at ``PATCH_CORNERS``)."""

    patches: np.ndarray  #: uint8 [D,PATCH_H,PATCH_W,3]
    lips: np.ndarray  #: float32 [D,20,2] landmarks 48-67 in patch px
    gray: np.ndarray  #: bool [D]
    #: the patches show mouth below their lower lip too: map targets with ``teeth.hanging_lips``
    hanging: bool = False
    #: brightness of the lips the patches were drawn for (else measured on each patch's lip ring)
    ring_lum: float | None = None

    def __len__(self) -> int:
        return len(self.patches)

    def save(self, path: str | Path) -> None:
        """Write to an ``.npz``."""
        np.savez_compressed(path, patches=self.patches, lips=self.lips, gray=self.gray)

    @classmethod
    def load(cls, path: str | Path) -> "DonorBank":
        """Read an ``.npz`` written by :meth:`save`."""
        with np.load(path) as z:
            return cls(z["patches"], z["lips"].astype(np.float32), z["gray"].astype(bool))

    def quality(self) -> np.ndarray:
        """Per donor: share of the opening that shows teeth × log(1 + mouth sharpness); higher is better."""
        return np.array([teeth_fraction(p, l) * np.log1p(mouth_sharpness(p, l)) for p, l in zip(self.patches, self.lips)])

    def best(self, k: int) -> "DonorBank":
        """The ``k`` best donors by :meth:`quality`, colour donors only when there are any.

        A small bank of clearly visible, sharp teeth makes the teacher's mouth interior nearly a
        function of the mouth's shape; with hundreds of donors the student's L1-trained RGB head
        learns their average, a dim grey band.  Grey subjects get these donors in grey.
        """
        q = self.quality()
        cand = np.flatnonzero(~self.gray) if (~self.gray).any() else np.arange(len(self))
        keep = np.sort(cand[np.argsort(-q[cand], kind="stable")[: max(1, int(k))]])
        return DonorBank(self.patches[keep], self.lips[keep], self.gray[keep])


def teeth_fraction(patch: np.ndarray, lips: np.ndarray) -> float:
    """Share of the inner-lip area clearly brighter than the lips (visible teeth), for lips 48-67 in patch px."""
    inner = np.zeros(patch.shape[:2], np.uint8)
    cv2.fillPoly(inner, [np.round(lips[12:20] * 16).astype(np.int32)], 1, shift=4)
    ring = np.zeros_like(inner)
    cv2.fillPoly(ring, [np.round(lips[0:12] * 16).astype(np.int32)], 1, shift=4)
    ring[inner > 0] = 0
    if inner.sum() < 20 or ring.sum() < 20:
        return 0.0
    lum = patch.astype(np.float32).mean(2)
    bright = (inner > 0) & (lum > 1.25 * lum[ring > 0].mean())
    if bright.sum() < 10:
        return 0.0
    # teeth are near-neutral: strongly tinted "teeth" are lighting casts or wrong crops
    sat = cv2.cvtColor(patch, cv2.COLOR_RGB2HSV)[..., 1]
    if float(sat[bright].mean()) > 0.3 * 255:
        return 0.0
    return float(bright.sum() / (inner > 0).sum())


def tooth_edges(img: np.ndarray, lips: np.ndarray) -> float:
    """Mean vertical-edge strength among the bright pixels of the inner-lip area, in grey levels:
    |L(x+1) − L(x)| where teeth meet gaps.  A row of separate teeth scores high, a smooth white
    band (model 1.1.0) low; 0 when no part of the opening is bright.  ``lips``: 48-67 in ``img`` px."""
    inner = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(inner, [np.round(lips[12:20] * 16).astype(np.int32)], 1, shift=4)
    inner = cv2.erode(inner, np.ones((3, 3), np.uint8))
    lum = img.astype(np.float32).mean(2)
    if inner.sum() < 20:
        return 0.0
    bright = (inner > 0) & (lum >= np.percentile(lum[inner > 0], 50))
    dx = np.zeros_like(lum)
    dx[:, :-1] = np.abs(np.diff(lum, axis=1))
    return float(dx[bright].mean()) if bright.sum() >= 10 else 0.0


def mouth_sharpness(patch: np.ndarray, lips: np.ndarray) -> float:
    """Variance of the Laplacian over the inner-lip box: low for blurry (upsampled, compressed) mouths."""
    x0, y0 = np.floor(lips[12:20].min(0)).astype(int)
    x1, y1 = np.ceil(lips[12:20].max(0)).astype(int) + 1
    g = cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY).astype(np.float32)
    lap = cv2.Laplacian(g, cv2.CV_32F)[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)]
    return float(lap.var()) if lap.size else 0.0


def build_donor_bank(crops: np.ndarray, lm68: np.ndarray, gray: np.ndarray, rows: np.ndarray, min_open: float = 0.16,
                     min_teeth: float = 0.4, drop_blurriest: float = 0.5) -> DonorBank:
    """Donor patches from the faces ``rows`` whose inner lips are open by at least ``min_open`` × mouth width
    and show teeth over at least ``min_teeth`` of the opening (no dark cavities, tongues or beards);
    the ``drop_blurriest`` share of them with the least sharp mouths is left out."""
    patches, lips, grays, sharp = [], [], [], []
    for i in rows:
        lm = lm68[i].astype(np.float64)
        width = np.linalg.norm(lm[54] - lm[48])
        if width < 1 or inner_gap(lm) < min_open * width:
            continue
        m = _similarity(lm[[48, 54]], PATCH_CORNERS)
        patch = cv2.warpAffine(np.ascontiguousarray(crops[i]), m, (PATCH_W, PATCH_H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        lip = lm[MOUTH] @ m[:, :2].T + m[:, 2]
        if teeth_fraction(patch, lip) < min_teeth:
            continue
        patches.append(patch)
        lips.append(lip)
        grays.append(bool(gray[i]))
        sharp.append(mouth_sharpness(patch, lip))
    keep = np.asarray(sharp) >= np.quantile(sharp, drop_blurriest) if sharp else np.zeros(0, bool)
    return DonorBank(
        np.array(patches, np.uint8).reshape(-1, PATCH_H, PATCH_W, 3)[keep],
        np.array(lips, np.float32).reshape(-1, 20, 2)[keep],
        np.array(grays, bool)[keep],
    )


def default_donor_path() -> Path:
    """``cache_dir/donors.npz`` of the default configuration."""
    from .config import load_config

    return Path(load_config()["paths"]["cache_dir"]) / "donors.npz"


# ------------------------------------------------------------------ teacher


class Teacher:
    """Smile teacher: thin-plate warp along λ·Δ, plus donor mouth interiors where the mouth opens.

    ``direction``: Δ [68,2] at S = 256, or a path (default: ``training/assets/smile_direction.json``).
    ``donors``: a :class:`DonorBank`, a path, ``"auto"`` (``cache_dir/donors.npz`` when it exists),
    ``"drawn"`` (the one procedurally drawn mouth of ``training.teeth``)
    or ``None`` for a warp-only teacher (``mask`` always zero).
    ``keep_donors``: use only the best this many donors (:meth:`DonorBank.best`); ``donor_pool``:
    each paste draws from the this-many donors whose opening is closest to the target's.
    With ``donors="auto"`` both default to ``[teacher] keep_donors`` / ``donor_pool`` in config.toml.
    """

    def __init__(self, direction: np.ndarray | str | Path | None = None, donors: DonorBank | str | Path | None = "auto", reg: float = 1e-6,
                 keep_donors: int | None = None, donor_pool: int | None = None, geometry: str | None = None,
                 open_ramp: tuple[float, float] | None = None):
        if geometry is None or open_ramp is None:
            from .config import load_config

            tcfg = load_config().get("teacher", {})
            geometry = geometry if geometry is not None else str(tcfg.get("geometry", "linear"))
            open_ramp = open_ramp if open_ramp is not None else tuple(tcfg.get("open_ramp", (OPEN_START, OPEN_FULL)))
        self.open_ramp = (float(open_ramp[0]), float(open_ramp[1]))
        if not 0.0 <= self.open_ramp[0] < self.open_ramp[1]:
            raise ValueError(f"open_ramp must be two increasing numbers >= 0, not {open_ramp!r}")
        if geometry not in GEOMETRIES:
            raise ValueError(f"teacher geometry must be one of {', '.join(GEOMETRIES)}, not {geometry!r}")
        self.geometry = geometry
        self.real_smile = None
        if geometry == "real":
            from .direction import load_real_smile

            self.real_smile = load_real_smile(direction if isinstance(direction, (str, Path)) else None)
        if direction is None or isinstance(direction, (str, Path)):
            direction, _ = load_direction(direction)
        self.delta = np.asarray(direction, dtype=np.float64).reshape(68, 2)
        self.reg = float(reg)
        self.weight = moving_weights()
        if isinstance(donors, str) and donors == "drawn":
            from .teeth import drawn_bank

            donors = drawn_bank()
        elif isinstance(donors, str) and donors == "auto":
            from .config import load_config

            tcfg = load_config().get("teacher", {})
            keep_donors = keep_donors if keep_donors is not None else tcfg.get("keep_donors")
            donor_pool = donor_pool if donor_pool is not None else tcfg.get("donor_pool")
            path = default_donor_path()
            donors = DonorBank.load(path) if path.exists() else None
            if donors is None:
                warnings.warn(f"{path} missing: warp-only teacher (run `python -m training pairs --donors`)", stacklevel=2)
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
            from .teeth import hanging_lips

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
        out = region * (1.0 - alpha[..., None]) + np.clip(tex, 0, 255) * alpha[..., None]
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
