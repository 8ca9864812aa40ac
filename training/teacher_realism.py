"""``python -m training teacher-realism``: how real could a model trained on each teacher look?

A student learns to imitate its teacher, so the teacher's own targets bound what training can
reach.  This step runs the realism two-sample test (:mod:`training.realism`, the same sample,
folds and features as ``evaluate``) on the teacher's targets for the split's neutral faces,
for several teacher settings, next to an exported model; it prints a Markdown table (ceiling =
the unedited faces, AUC at λ = 1 and 2; 0.5 = cannot be told from real smiles).
"""
from __future__ import annotations

import argparse
from typing import Any, Callable

import numpy as np

from .config import TeacherConfig
from .realism_study import Study, run_study, study_parser, train_appearance

#: Teacher settings compared by default: name -> keyword arguments of :class:`training.teacher.Teacher`
#: (``donors="bank"``: the donor bank of the config's cache, ``cache_dir/donors.npz``).
VARIANTS: dict[str, dict[str, Any]] = {
    "linear geometry, drawn mouth (what model 1.2.0 learned)": dict(geometry="linear", donors="drawn"),
    "linear geometry, warp only": dict(geometry="linear", donors=None),
    "real-smile geometry, warp only": dict(geometry="real", donors=None),
    "real-smile geometry, drawn mouth, opaque ramp": dict(geometry="real", donors="drawn", open_ramp=(0.03, 0.06)),
    "real-smile geometry, 16 best donor mouths, opaque ramp": dict(geometry="real", donors="bank", keep_donors=16,
                                                                     donor_pool=4, open_ramp=(0.03, 0.06)),
    "real-smile geometry, all donor mouths, opaque ramp": dict(geometry="real", donors="bank", keep_donors=10**6,
                                                                 donor_pool=24, open_ramp=(0.03, 0.06)),
}


def teacher_editor(teacher, lm68: np.ndarray, seed: int = 0, appearance=None, gain: float = 1.0) -> Callable[[np.ndarray, float], np.ndarray]:
    """An editor (``uint8 [N,S,S,3], λ -> uint8 [N,S,S,3]``) returning ``teacher``'s targets; ``lm68``
    [N,68,2] are the landmarks of the crops it will be given, in the same order, at their size.
    With an ``appearance`` (:class:`training.appearance.Appearance`) its shading is added (× ``gain``)."""
    lm68 = np.asarray(lm68, np.float64)

    def one(crop: np.ndarray, lm: np.ndarray, lam: float, rng: np.random.Generator) -> np.ndarray:
        pair = teacher.synthesize(np.ascontiguousarray(crop), lm, lam, rng)
        if appearance is None:
            return pair.target
        return appearance.apply(pair.target, pair.landmarks, lam, pair.mask, gain)

    def edit(crops: np.ndarray, lam: float) -> np.ndarray:
        if len(crops) != len(lm68):
            raise ValueError(f"{len(crops)} crops but landmarks for {len(lm68)}")
        rng = np.random.default_rng(seed)
        return np.stack([one(c, l, float(lam), rng) for c, l in zip(crops, lm68)])

    return edit


def build_teacher(kw: dict[str, Any], cfg):
    """The :class:`training.teacher.Teacher` of one of :data:`VARIANTS` (the donor bank from ``cfg``)."""
    from .teacher import Teacher, teacher_from_config

    if kw["donors"] != "bank":
        return Teacher(**kw)
    settings = TeacherConfig(kw["keep_donors"], kw["donor_pool"], kw["geometry"], kw["open_ramp"])
    return teacher_from_config(settings, cfg.donor_path)


def main(argv: list[str] | None = None) -> int:
    """``python -m training teacher-realism [--split val|test] [--model X.onnx] [--faces N] [--appearance GAIN]``."""
    ap = study_parser("teacher-realism", __doc__.splitlines()[0], "also test this exported .onnx model on the same sample")
    ap.add_argument("--appearance", type=float, default=None, metavar="GAIN",
                    help="also test the real-smile teachers with the shading learned from the train split's "
                         "same-person pairs (training.appearance), times GAIN")
    return run_study(ap, argv, "teacher_realism", teacher_table)


def teacher_table(args: argparse.Namespace, study: Study) -> str:
    """The Markdown table of realism AUCs (ceiling, λ = 1, 2) of every teacher in :data:`VARIANTS`
    (with ``args.appearance`` also the real-smile ones with shading; with ``args.model`` also that
    model), printed row by row as it is made."""
    from smilecore.align import CROP_SIZE

    from .realism import evaluate_realism
    from .teacher import Teacher

    cfg, crops, index, sample = study.cfg, study.crops, study.index, study.sample
    ev = cfg.evaluate

    def teacher(kw: dict[str, Any]) -> Teacher:
        return build_teacher(kw, cfg)

    lm = index["lm68"][sample.edit_rows]
    editors: dict[str, tuple[Callable, int]] = {}
    if args.model:
        from .evaluate import onnx_editor

        editors[f"model {args.model}"] = onnx_editor(args.model)
    for name, kw in VARIANTS.items():
        editors[f"teacher: {name}"] = (teacher_editor(teacher(kw), lm), CROP_SIZE)
    if args.appearance is not None:
        app = train_appearance(study)
        for name, kw in VARIANTS.items():
            if kw["geometry"] == "real" and kw["donors"] is not None:
                editors[f"teacher: {name}, + appearance ×{args.appearance:g} ({app.people} people)"] = (
                    teacher_editor(teacher(kw), lm, appearance=app, gain=args.appearance), CROP_SIZE)
    folds, repeats = ev.realism_folds, ev.realism_repeats
    lines = [f"{args.split} split, {len(sample.edit_rows)} faces per side (realism AUC, grey HOG + LBP; 0.5 = cannot tell)", "",
             "| what | unedited (ceiling) | λ = 1 | λ = 2 |", "|---|---:|---:|---:|"]
    print("\n".join(lines), flush=True)
    for name, (edit, size) in editors.items():
        res, _ = evaluate_realism(edit, size, crops, index, sample, lams=(1.0, 2.0), folds=folds, repeats=repeats,
                                  l2=float(ev.realism_l2), colour=False, floor_splits=0)
        row = (f"| {name} | {res['ceiling']['auc']:.3f} | {res['per_lambda']['1']['auc']:.3f} ± {res['per_lambda']['1']['sd']:.3f} "
               f"| {res['per_lambda']['2']['auc']:.3f} ± {res['per_lambda']['2']['sd']:.3f} |")
        lines.append(row)
        print(row, flush=True)
    return "\n".join(lines)
