"""The shape of the lips at λ = 1 and 2 against real smiles (docs/realism.md, seventeenth session).

``python -m tools.lip_shape [MODEL.onnx]``, from the repository root (``training`` is not installed:
it is imported from the checkout): dlib's 68 landmarks on the validation realism sample
(``training.realism.realism_sample``: neutral faces and real smiles of other people, matched), on
the model's edits of the neutral faces at λ = 1 and 2 (composited as in training), and on the real
smiles and their broader half by inner-lip opening; prints the median (10th, 90th percentile) of
each shape measure, lengths over the eye distance, y downwards. Needs the prepared cache
(``python -m training prepare``) and the ``[train]`` extra.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from smilecore.model import SmileModel
from smilecore.network_io import to_network_input
from smilecore.registry import resolve_model
from training.config import load_config
from training.dataset import load_labels
from training.landmarks68 import crop_landmarks68
from training.losses import composite
from training.prepare import load_prepared
from training.realism import realism_sample


def edited(model: SmileModel, crops, rows: np.ndarray, lam: float) -> np.ndarray:
    """The model's edits of ``rows`` at ``lam``, uint8 [N,S,S,3]."""
    out = []
    for i in range(0, len(rows), 16):
        c = np.stack([np.asarray(crops[r]) for r in rows[i : i + 16]])
        o = model.run(c, lam)
        e = composite(torch.from_numpy(to_network_input(c)), torch.from_numpy(o.rgb), torch.from_numpy(o.mask),
                      torch.from_numpy(o.flow), torch.from_numpy(o.shade))
        out.append(((e.permute(0, 2, 3, 1).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8))
    return np.concatenate(out)


def shape(lm: np.ndarray) -> dict[str, np.ndarray]:
    """Shape measures of [N,68,2] landmarks, over the eye distance (y downwards)."""
    eye = np.linalg.norm(lm[:, 36:42].mean(1) - lm[:, 42:48].mean(1), axis=1)
    x, y = lm[..., 0] / eye[:, None], lm[..., 1] / eye[:, None]
    return {
        "inner width (60-64)": x[:, 64] - x[:, 60],
        "opening (62-66)": y[:, 66] - y[:, 62],
        "inner corners below 61/63": (y[:, 60] + y[:, 64]) / 2 - (y[:, 61] + y[:, 63]) / 2,
        "outer corners below 50/52": (y[:, 48] + y[:, 54]) / 2 - (y[:, 50] + y[:, 52]) / 2,
        "49/53 below 51": (y[:, 49] + y[:, 53]) / 2 - y[:, 51],
        "upper lip at its sides": ((y[:, 61] - y[:, 50]) + (y[:, 63] - y[:, 52])) / 2,
    }


def main(argv: list[str]) -> int:
    cfg = load_config(None)
    crops, index = load_prepared(cfg)
    sample = realism_sample(index, load_labels(cfg.cache), "val")
    model = SmileModel(Path(argv[0]) if argv else Path(resolve_model(None)))
    sets = {"neutral": np.stack([np.asarray(crops[r]) for r in sample.edit_rows]),
            "λ = 1": edited(model, crops, sample.edit_rows, 1.0), "λ = 2": edited(model, crops, sample.edit_rows, 2.0),
            "real smiles": np.stack([np.asarray(crops[r]) for r in sample.real_rows])}
    marks = {k: crop_landmarks68(v) for k, v in sets.items()}
    opening = shape(marks["real smiles"])["opening (62-66)"]
    marks["broad half"] = marks["real smiles"][opening >= np.median(opening)]
    measures = {k: shape(v) for k, v in marks.items()}
    print(f"model {model.version}; faces: " + ", ".join(f"{k} {len(v)}" for k, v in marks.items()))
    print("| | " + " | ".join(measures) + " |\n|---|" + "---:|" * len(measures))
    for name in measures["neutral"]:
        cells = [f"{np.median(m[name]):.3f} ({np.percentile(m[name], 10):.3f}, {np.percentile(m[name], 90):.3f})" for m in measures.values()]
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
