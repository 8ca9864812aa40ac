"""The mouth's geometry at each strength, against real smiles (issue 15 item 2).

Issue 15 asks that λ = 1 be a typical real smile, λ = 2 a broad one (about the 90th percentile
of real smiles), that the strength saturate instead of stretching the mouth, and that the lips
keep their thickness. :mod:`training.geometry` is what the teacher aims at; this module measures
what a model *does*: dlib's 68 landmarks (:func:`training.landmarks68.crop_landmarks68`) on the
realism sample's unedited neutral faces, on their edits at each λ, and on the sample's real smiles
of other people, reduced to :func:`training.geometry.mouth_metrics` (mouth width, inner-lip
opening, lower and upper lip thickness, corner lift; every length over the distance between the
eye centres, as in shared/docs/smile-measurements.md).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .geometry import METRICS, mouth_metrics
from .realism import Editor

#: Percentiles reported for each metric: low, median, high.
PERCENTILES = (10, 50, 90)
#: Column titles of :func:`geometry_markdown`, one per :data:`training.geometry.METRICS` entry.
TITLES = ("mouth width", "opening", "lower lip", "upper lip", "corners up")


def measure(crops: np.ndarray) -> np.ndarray:
    """``[N,5]`` :func:`training.geometry.mouth_metrics` of aligned uint8 RGB crops ``[N,S,S,3]``."""
    from .landmarks68 import crop_landmarks68

    if len(crops) == 0:
        return np.zeros((0, len(METRICS)))
    return mouth_metrics(crop_landmarks68(crops))


def spread(values: np.ndarray) -> dict[str, list[float]]:
    """``p10``, ``p50``, ``p90`` of each column of ``values`` [N,5] (lists of 5)."""
    if len(values) == 0:
        raise ValueError("no faces to measure")
    return {f"p{p}": [round(float(v), 4) for v in np.percentile(values, p, axis=0)] for p in PERCENTILES}


def mouth_geometry(edit: Editor, size: int, crops: np.ndarray, index: dict[str, np.ndarray], edit_rows: np.ndarray,
                   real_rows: np.ndarray, lams: Sequence[float]) -> dict[str, Any]:
    """The mouth metrics of real smiles (``real_rows``; also per source), of the unedited neutral faces
    (``edit_rows``) and of their edits at each of ``lams``, as :func:`spread` gives them; for the
    neutral faces and each λ also ``above_real_p90``, the share of faces beyond the real smiles'
    90th percentile of each metric, and ``below_real_p10`` the share below their 10th (a lip thinner
    than real smiles keep it).
    Raises ValueError when either side has no faces."""
    from .dataset import resize_crop

    if len(edit_rows) == 0 or len(real_rows) == 0:
        raise ValueError("the geometry needs neutral faces and real smiles")
    inputs = np.stack([resize_crop(np.asarray(crops[r]), size) for r in edit_rows])
    reals = np.stack([resize_crop(np.asarray(crops[r]), size) for r in real_rows])
    real = measure(reals)
    ref = spread(real)
    lo, hi = np.percentile(real, PERCENTILES[0], axis=0), np.percentile(real, PERCENTILES[-1], axis=0)
    sources = index["source"][real_rows]

    def against_real(got: np.ndarray) -> dict[str, list[float]]:
        return {**spread(got), "above_real_p90": [round(float(v), 3) for v in (got > hi).mean(0)],
                "below_real_p10": [round(float(v), 3) for v in (got < lo).mean(0)]}

    return {
        "metrics": list(METRICS), "edited": int(len(inputs)), "real_faces": int(len(reals)), "real": ref,
        "real_by_source": {str(s): spread(real[sources == s]) for s in np.unique(sources)},
        "unedited": against_real(measure(inputs)),
        "per_lambda": {f"{float(lam):g}": against_real(measure(edit(inputs, float(lam)))) for lam in lams},
    }


def geometry_markdown(result: dict[str, Any]) -> str:
    """:func:`mouth_geometry`'s result as a Markdown table: median (10th–90th percentile) per metric."""

    def cells(m: dict[str, list[float]]) -> str:
        return "".join(f" {m['p50'][k]:.3f} ({m['p10'][k]:.3f}–{m['p90'][k]:.3f}) |" for k in range(len(TITLES)))

    lines = [f"Mouth geometry (dlib's 68 landmarks; lengths over the distance between the eye centres; median "
             f"(10th–90th percentile); {result['edited']} neutral faces, {result['real_faces']} real smiles of other people):",
             "", "| faces |" + "".join(f" {t} |" for t in TITLES), "|---|" + "---:|" * len(TITLES),
             "| real smiles |" + cells(result["real"])]
    for source, m in result["real_by_source"].items():
        lines.append(f"| … {source} only |" + cells(m))
    lines.append("| neutral, unedited |" + cells(result["unedited"]))
    for lam, m in result["per_lambda"].items():
        lines.append(f"| λ = {lam} |" + cells(m))
    lines += ["", "Share of the edits beyond the real smiles' 90th percentile (below their 10th for the lips):", "",
              "| λ |" + "".join(f" {t} |" for t in TITLES), "|---|" + "---:|" * len(TITLES)]
    lips = {METRICS.index("lower_lip"), METRICS.index("upper_lip")}
    for name, m in [("neutral, unedited", result["unedited"])] + [(lam, m) for lam, m in result["per_lambda"].items()]:
        shares = [m["below_real_p10"][k] if k in lips else m["above_real_p90"][k] for k in range(len(TITLES))]
        lines.append(f"| {name} |" + "".join(f" {v:.0%} |" for v in shares))
    return "\n".join(lines)
