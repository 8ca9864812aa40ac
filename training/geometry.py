"""The geometry of real smiles: how far each landmark moves, learned with its spread.

Eq. 1 scales one mean displacement linearly: λ = 2 is twice the average change, λ = 3 three
times, and the mouth soon leaves the range of real faces (too wide, lips thinned to a line).
This module replaces that with a model fitted to the same-person neutral/happy pairs:

* each person's displacement d_p (mean happy − mean neutral landmarks, aligned crop at
  S = 256) is split into an **opening** part — how the landmarks move per unit of inner-lip
  opening (a per-landmark regression slope β: the jaw and lower lip drop, the upper lip
  rises) — and a **smile** part, the mean of what remains (corners up and out, cheeks);
* the strength λ sets an amount of each, ``displacement(λ) = s(λ)·Δ_smile + o(λ)·β``, with
  s and o calibrated on the *results*: at λ = 1 the median neutral face reaches the median
  real smile (mouth width and corner lift for s, inner-lip opening for o), at λ = 2 the 90th
  percentile of real smiles (the mouth no wider than that); beyond 2 they saturate (at most
  :data:`SATURATION` × the λ 1→2 step more) instead of growing without end; below 0 they
  scale linearly (less smile);
* lips keep their thickness: a lip may thin only as much as lips of real smiles do
  (median happy / neutral thickness ratio, per lip); the outer lip line moves to keep it.

Every length in :func:`mouth_metrics` is divided by the distance between the eye centres
(IOD), as in shared/docs/smile-measurements.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from smilecore import strength as strength_rule

#: Names of the columns of :func:`mouth_metrics`.
METRICS = ("width", "opening", "lower_lip", "upper_lip", "corners_up")
#: Inner-lip pairs (upper, lower) whose vertical gap is the opening.
_OPEN_PAIRS = np.array([[61, 67], [62, 66], [63, 65]])
#: (outer, inner) landmark pairs of the upper and of the lower lip, left to right.
UPPER_LIP = np.array([[50, 61], [51, 62], [52, 63]])
LOWER_LIP = np.array([[58, 67], [57, 66], [56, 65]])
#: How far past λ = 2 the saturating part reaches, in units of the λ 1→2 step (at λ → ∞): the
#: engine's own rule for the strengths a user asks for (smilecore.strength.saturated).
SATURATION = strength_rule.SATURATION


def iod(lm68: np.ndarray) -> np.ndarray:
    """Distance between the eye centres of ``[..., 68, 2]`` landmarks."""
    lm68 = np.asarray(lm68, np.float64)
    return np.linalg.norm(lm68[..., 36:42, :].mean(-2) - lm68[..., 42:48, :].mean(-2), axis=-1)


def opening(lm68: np.ndarray) -> np.ndarray:
    """Mean vertical inner-lip gap of ``[..., 68, 2]`` landmarks, in pixels."""
    lm68 = np.asarray(lm68, np.float64)
    return np.mean(lm68[..., _OPEN_PAIRS[:, 1], 1] - lm68[..., _OPEN_PAIRS[:, 0], 1], axis=-1)


def broad_half(lm68: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The ``rows`` (of ``lm68`` [N,68,2]) whose inner-lip opening is at or above their median:
    the broader half of a set of smiles."""
    gap = opening(lm68[rows]) / iod(lm68[rows])
    return rows[gap >= np.median(gap)]


def mouth_metrics(lm68: np.ndarray) -> np.ndarray:
    """``[..., 5]``: mouth width, inner-lip opening, lower and upper lip thickness (at the centre)
    and how far the mouth centre lies below the corners, each divided by the IOD (see :data:`METRICS`)."""
    lm = np.asarray(lm68, np.float64)
    e = iod(lm)
    width = np.linalg.norm(lm[..., 54, :] - lm[..., 48, :], axis=-1)
    lower = lm[..., 57, 1] - lm[..., 66, 1]
    upper = lm[..., 62, 1] - lm[..., 51, 1]
    corners = 0.5 * (lm[..., 51, 1] + lm[..., 57, 1]) - 0.5 * (lm[..., 48, 1] + lm[..., 54, 1])
    return np.stack([width, opening(lm), lower, upper, corners], -1) / e[..., None]


def _schedule(lam: float, v1: float, v2: float) -> float:
    """Amount at strength ``lam``: 0 at 0, ``v1`` at 1, ``v2`` at 2 (piecewise linear), then
    saturating as :func:`smilecore.strength.saturated` does (the same slope at 2, the asymptote
    ``v2 + SATURATION·(v2 − v1)``); linear ``lam·v1`` below 0."""
    if lam <= 1.0:
        return lam * v1
    return v1 + (float(strength_rule.saturated(lam)) - 1.0) * (v2 - v1)


@dataclass
class RealSmile:
    """Landmark displacement at any strength, fitted to real neutral/happy pairs (module doc)."""

    smile: np.ndarray  #: [68,2] Δ_smile, crop px at S = 256
    open_per_iod: np.ndarray  #: [68,2] β: displacement per unit of opening (in IODs), crop px at S = 256
    s1: float  #: amount of Δ_smile at λ = 1
    s2: float  #: ... at λ = 2
    o1: float  #: opening (IOD units) added at λ = 1
    o2: float  #: ... at λ = 2
    upper_ratio: float  #: least upper-lip thickness, as a share of the face's own
    lower_ratio: float  #: least lower-lip thickness, as a share of the face's own

    def displacement(self, lam: float) -> np.ndarray:
        """[68,2] landmark offsets at strength ``lam`` (crop px at S = 256)."""
        s = _schedule(lam, self.s1, self.s2)
        o = _schedule(lam, self.o1, self.o2)
        return s * self.smile + o * self.open_per_iod

    def keep_lips(self, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        """``target`` with each lip at least ``ratio`` × its thickness in ``source``: the outer
        lip line moves (up for the upper lip, down for the lower one); the opening is kept."""
        out = np.array(target, np.float64, copy=True)
        for pairs, ratio, sign in ((UPPER_LIP, self.upper_ratio, -1.0), (LOWER_LIP, self.lower_ratio, 1.0)):
            for outer, inner in pairs:
                was = sign * (source[outer, 1] - source[inner, 1])
                now = sign * (out[outer, 1] - out[inner, 1])
                least = ratio * max(was, 0.0)
                if now < least:
                    out[outer, 1] = out[inner, 1] + sign * least
        return out

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (arrays rounded)."""
        return {
            "smile": np.round(self.smile, 4).tolist(),
            "open_per_iod": np.round(self.open_per_iod, 4).tolist(),
            **{k: round(float(getattr(self, k)), 5) for k in ("s1", "s2", "o1", "o2", "upper_ratio", "lower_ratio")},
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any], scale: float = 1.0) -> "RealSmile":
        """Read :meth:`to_json`'s dict; ``scale`` converts its pixels to another crop size."""
        return cls(
            smile=np.array(doc["smile"], np.float64) * scale,
            open_per_iod=np.array(doc["open_per_iod"], np.float64) * scale,
            **{k: float(doc[k]) for k in ("s1", "s2", "o1", "o2", "upper_ratio", "lower_ratio")},
        )


def fit_real_smile(deltas: np.ndarray, neutrals: np.ndarray, happy: np.ndarray, neutral_faces: np.ndarray,
                   moving: np.ndarray | None = None) -> RealSmile:
    """Fit :class:`RealSmile`.

    ``deltas`` / ``neutrals`` [P,68,2]: per person, happy − neutral mean landmarks and the neutral
    mean (see ``training.direction.person_deltas``); ``happy`` / ``neutral_faces`` [N,68,2]: the
    individual happy and neutral faces whose metric percentiles set the calibration; ``moving``
    [68]: weights of the landmarks the teacher moves (the calibration applies the displacement the
    way the teacher does; default all 1).
    """
    deltas = np.asarray(deltas, np.float64)
    neutrals = np.asarray(neutrals, np.float64)
    w = np.ones(68) if moving is None else np.asarray(moving, np.float64)
    o = (opening(neutrals + deltas) - opening(neutrals)) / iod(neutrals)
    design = np.stack([np.ones_like(o), o], 1)
    coef, *_ = np.linalg.lstsq(design, deltas.reshape(len(deltas), -1), rcond=None)
    beta = coef[1].reshape(68, 2)
    smile = (deltas - o[:, None, None] * beta[None]).mean(0)

    real = mouth_metrics(happy)
    base = np.asarray(neutral_faces, np.float64)
    col = {name: i for i, name in enumerate(METRICS)}

    def reached(s: float, op: float) -> np.ndarray:
        moved = base + w[:, None] * (s * smile + op * beta)
        return np.median(mouth_metrics(moved), axis=0)

    def solve(which: tuple[str, ...], fixed_other: float, pct: float, for_smile: bool) -> np.ndarray:
        """The amount at which the median face reaches the ``pct`` percentile of real smiles, per metric."""
        idx = [col[m] for m in which]
        goal = np.percentile(real[:, idx], pct, axis=0)
        # each metric is nearly linear in the amount: two probes give the slope
        step = 1.0 if for_smile else 0.1
        a = reached(0.0, fixed_other) if for_smile else reached(fixed_other, 0.0)
        b = reached(step, fixed_other) if for_smile else reached(fixed_other, step)
        slope = (b[idx] - a[idx]) / step
        return np.where(np.abs(slope) > 1e-9, (goal - a[idx]) / np.where(np.abs(slope) > 1e-9, slope, 1.0), np.inf)

    # λ = 1: the median real smile (width and corner lift on average); λ = 2: the 90th percentile,
    # where the mouth may not get wider than real broad smiles do (the tightest of the two wins)
    s1 = float(np.mean(solve(("width", "corners_up"), 0.0, 50, True)))
    o1 = float(solve(("opening",), s1, 50, False)[0])
    s1 = float(np.mean(solve(("width", "corners_up"), o1, 50, True)))
    s2 = float(np.min(solve(("width", "corners_up"), o1, 90, True)))
    o2 = float(solve(("opening",), s2, 90, False)[0])
    s2 = float(np.min(solve(("width", "corners_up"), o2, 90, True)))  # the opening widens a little too

    neutral_m = mouth_metrics(base)
    ratio = np.median(real, axis=0) / np.maximum(np.median(neutral_m, axis=0), 1e-9)
    return RealSmile(smile=smile, open_per_iod=beta, s1=s1, s2=max(s2, s1), o1=o1, o2=max(o2, o1),
                     upper_ratio=float(min(1.0, ratio[col["upper_lip"]])), lower_ratio=float(min(1.0, ratio[col["lower_lip"]])))
