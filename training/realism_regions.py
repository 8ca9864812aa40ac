"""``python -m training realism-regions``: where on the face does the realism test see the edit?

The realism test (:mod:`training.realism`) looks at the whole lower face at once. This step runs
the same two-sample test (same sample, folds, classifier and HOG + LBP features) on one part of
the aligned crop at a time — the mouth, the upper lip and nose, each cheek, the chin, and the
eyes (outside the test's window: the Duchenne part of a smile) — for the unedited neutral faces
(the ceiling), for an exported model's edits and for the best teacher's targets, at λ = 1 and
2. A part whose AUC stays near its ceiling is a part the edit does not make look like a real
smile; a part whose AUC rises above its ceiling is one the edit makes *less* real than doing
nothing. It prints a Markdown table and writes it to the cache's ``eval/`` folder.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

import numpy as np

from .realism_study import Study, run_study, study_parser, train_appearance

#: The parts compared: name -> window (x0, y0, x1, y1) in crop fractions, patch (h, w) it is
#: resampled to (multiples of 8 for the HOG cells; about the realism window's own resolution).
PARTS: dict[str, tuple[tuple[float, float, float, float], tuple[int, int]]] = {
    "whole lower face (the test's window)": ((0.18, 0.50, 0.82, 0.92), (48, 80)),
    "mouth": ((0.32, 0.62, 0.68, 0.82), (24, 40)),
    "nose and upper lip": ((0.36, 0.48, 0.64, 0.66), (24, 40)),
    "cheek, image left": ((0.16, 0.48, 0.38, 0.76), (32, 24)),
    "cheek, image right": ((0.62, 0.48, 0.84, 0.76), (32, 24)),
    "chin": ((0.34, 0.78, 0.66, 0.94), (16, 32)),
    "eyes": ((0.20, 0.28, 0.80, 0.46), (16, 56)),
}


def part_aucs(faces: np.ndarray, reals: np.ndarray, sample_info: dict[str, Any], folds: int, repeats: int,
              l2: float) -> dict[str, float]:
    """The two-sample AUC of ``faces`` against ``reals`` on each of :data:`PARTS` (grey features)."""
    from .realism import features, two_sample_auc

    out = {}
    for name, (window, patch) in PARTS.items():
        r = two_sample_auc(features(faces, False, window, patch), features(reals, False, window, patch),
                           sample_info["p1"], sample_info["p0"], sample_info["s1"], sample_info["s0"], folds, repeats, l2)
        out[name] = r["auc"]
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m training realism-regions [--split val|test] [--model X.onnx] [--faces N] [--lams L...] [--teacher]``."""
    ap = study_parser("realism-regions", __doc__.splitlines()[0],
                      "the exported .onnx model (default: the engine's default model)")
    ap.add_argument("--lams", type=float, nargs="+", default=[1.0, 2.0], help="strengths to test (default 1 2)")
    ap.add_argument("--teacher", action="store_true",
                    help="also the best teacher of `teacher-realism` (real geometry, all donor mouths, learned appearance)")
    return run_study(ap, argv, "realism_regions", part_table)


def part_table(args: argparse.Namespace, study: Study) -> str:
    """The Markdown table of :func:`part_aucs` for the unedited faces and each editor at each of
    ``args.lams`` (λ = 1, 2 by default; an exported model, with ``args.teacher`` also the best
    teacher), printed as well."""
    from smilecore.align import CROP_SIZE
    from smilecore.registry import resolve_model

    from .evaluate import onnx_editor
    from .pairs import resize_crop
    from .realism import stratum_keys

    cfg, crops, index, sample = study.cfg, study.crops, study.index, study.sample
    ev = cfg.evaluate
    model_path = args.model or str(resolve_model(None))
    editors: dict[str, tuple[Callable[[np.ndarray, float], np.ndarray], int]] = {f"model {model_path.rsplit('/', 1)[-1]}": onnx_editor(model_path)}
    if args.teacher:
        from .teacher_realism import VARIANTS, build_teacher, teacher_editor

        app = train_appearance(study)
        kw = VARIANTS["real-smile geometry, all donor mouths, opaque ramp"]
        editors["best teacher (real geometry, all donor mouths, + appearance)"] = (
            teacher_editor(build_teacher(kw, cfg), index["lm68"][sample.edit_rows], appearance=app), CROP_SIZE)
    folds, repeats, l2 = ev.realism_folds, ev.realism_repeats, float(ev.realism_l2)
    info = {"p1": index["person"][sample.edit_rows], "p0": index["person"][sample.real_rows],
            "s1": sample.edit_keys if sample.edit_keys is not None else stratum_keys(index, sample.edit_rows),
            "s0": sample.real_keys if sample.real_keys is not None else stratum_keys(index, sample.real_rows)}
    columns: dict[str, dict[str, float]] = {}
    for name, (edit, size) in editors.items():
        inputs = np.stack([resize_crop(np.asarray(crops[r]), size) for r in sample.edit_rows])
        reals = np.stack([resize_crop(np.asarray(crops[r]), size) for r in sample.real_rows])
        if "unedited (ceiling)" not in columns:
            columns["unedited (ceiling)"] = part_aucs(inputs, reals, info, folds, repeats, l2)
        for lam in args.lams:
            columns[f"{name}, λ = {lam:g}"] = part_aucs(edit(inputs, lam), reals, info, folds, repeats, l2)
            print(f"done: {name}, λ = {lam:g}", file=sys.stderr, flush=True)
    heads = list(columns)
    lines = [f"{args.split} split, {len(sample.edit_rows)} faces per side: realism AUC of each part (grey HOG + LBP; "
             "0.5 = cannot tell from real smiles)", "",
             "| part | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
    for part in PARTS:
        lines.append(f"| {part} | " + " | ".join(f"{columns[h][part]:.3f}" for h in heads) + " |")
    text = "\n".join(lines)
    print(text)
    return text
