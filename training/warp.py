"""The thin-plate spline warp the teacher moves landmarks with (own numpy implementation).

A spline is fitted to the moved landmarks with the crop border pinned, evaluated on a coarse
grid and upsampled (the flow is smooth), which keeps a pair at a few milliseconds.  ``flow`` is
the BACKWARD flow in crop pixels: ``warped(p) = image(p + flow(p))``, channel 0 = dx, 1 = dy
(docs/model-contract.md).
"""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from .landmarks68 import INNER_PAIRS

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
