"""``python -m training evaluate``: how a model edits the validation split's neutral faces.

Per strength λ ∈ ``[evaluate] lams`` (default −1, 0, 1, 2, 3), on the
person-disjoint validation split (never tuned on):

* smile probability from the training classifier, before → after, and the
  fraction of non-smiling faces (p < 0.5 before) whose probability rises
  (falls, for λ < 0);
* identity distance input → output with dlib's own face descriptor
  (``dlib_face_recognition_resnet_model_v1`` on chips placed by the 5-point
  predictor on the *input*, so only appearance changes count; < 0.6 = same person);
* SSIM and L1 of the output against the teacher's target (at the crop size);
* teeth shown: on the faces whose mouth the teacher opens at λ, the share of the
  target's inner-lip area that is bright, near-neutral "teeth"
  (:func:`training.donors.teeth_fraction`), in the output and in the teacher's
  target.  A warp-only model scores ~0 here however wide it pulls the lips;
* tooth edges: on the same faces, how strongly the bright part of the opening changes from
  pixel to pixel across it (:func:`training.donors.tooth_edges`, grey levels): separate teeth
  score high, a smooth white band low.
* skin detail kept: the finest band of the face's log-luminance over its skin outside the mouth,
  edited against unedited (:mod:`training.detail`; median over the faces): 1.0 keeps all of it.
* reads as (λ > 0): how far the edits smile by the engine's own measure, the face mesh's smile
  level of each edit as a strength (:func:`training.smile_level.reading`: 10th / 50th / 90th
  percentiles, 1 = a typical real smile) and the share that read under half the smile asked for.
* realism AUC (:mod:`training.realism`): a two-sample test, a logistic regression on grey
  HOG + LBP features of the aligned lower face trained with person-disjoint folds to tell the
  split's neutral faces, edited at ``[evaluate] realism_lams`` (1 and 2), from real smiling
  faces of *other people* of the same split, matched per source, grey/colour and face size;
  ROC AUC 0.5 = cannot tell.  The row λ = 0 holds the same test on the unedited neutral faces
  (the ceiling).  It uses its own, larger sample (``realism_faces`` per side) and writes
  ``realism_sheet.png`` (lower-face windows: real smile | unedited | each λ).  The same test on
  the face mesh's landmarks (:mod:`training.realism_shape`: the shape alone) is the table's
  *shape judge* column; ``--cnn-judge`` adds a small CNN on the grey window.  A judge with
  more examples (:func:`training.realism.trained_judge`, ``[evaluate] trained_judge_faces`` /
  ``--trained-judge``, default 700 per side): the same features and classifier fitted once on
  the *train* split's edits and real smiles, scored on this split's realism sample.
* realism of what ``smile`` makes and writes (``[evaluate] photo_composites``, with the engine
  composite): the realism sample edited on each face's source photo at the photo's own resolution
  and cut again as the real smiles were (``photo``), and that photo saved as ``smile`` saves it and
  read back (``saved``), through the same test and the judges of other kinds (:func:`photo_realism`).

The teacher compared against is ``[evaluate] teacher`` (``--teacher``): ``drawn`` (the drawn
mouth of ``training.teeth``, what models from ``atlas`` stages learn) or ``donors`` (real donor
mouths, what models 1.0.0 and 1.1.0 learned).

It prints Markdown tables, writes ``cache_dir/eval/metrics.json`` and a contact
sheet ``cache_dir/eval/contact_sheet.png`` (input | λ = −1, 1, 2, 3 | teacher at 2),
both outside the repository (the faces may not be redistributed).
The model is an exported ``.onnx`` (``--model``, run through smilecore's loader and, by
default, put into each crop by the engine's own composite with the crop as the photo:
``--composite``, :data:`COMPOSITES`) or a training checkpoint (``--checkpoint``, default the
run's best.pt).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import torch

from .config import PHOTO_COMPOSITES, EvaluateConfig, load_config
from .dataset import load_labels, neutral_rows, smiling_rows, to_tensor
from .donors import teeth_fraction, tooth_edges
from .losses import composite, ssim
from .nets import network_input
from .realism import Editor
from .dataset import resize_crop, scale_landmarks
from .teacher import Teacher, teacher_from_config

#: Strengths shown in the contact sheet.
SHEET_LAMS = (-1.0, 1.0, 2.0, 3.0)



#: How :func:`onnx_editor` puts the model's outputs into the crop: ``"engine"``, the engine's own
#: :func:`smilecore.composite.composite_face` with the crop as the photo (what a user gets: the
#: face's own edit region, the painted mouth matched to the photo's white point and grain, the
#: warp bicubic); ``"network"``, the contract's formula alone (:func:`training.losses.composite`:
#: bilinear warp, no region, no matching), as every evaluation up to model 1.4.0 did; ``"closed"``, the
#: engine's composite without the painted mouth (the warp and the shade only: the lips move as in a smile
#: and nothing is drawn between them), a closed-lip smile of the same run; ``"photo"``, the engine's composite
#: on the face's source photo at the photo's own resolution, as ``smile`` edits it, and the crop cut again
#: from the edited photo as ``prepare`` cut the real smiles' (:mod:`training.photos`); ``"saved"``, that
#: photo written as ``smile`` writes it (a JPEG with the source's own tables) and read back.
COMPOSITES = ("engine", "network", "closed") + PHOTO_COMPOSITES


def onnx_editor(path: str | Path, how: str = "engine", photos=None) -> tuple[Editor, int]:
    """An editor running an exported model through the engine's loader and composite (``how``:
    one of :data:`COMPOSITES`); returns (editor, crop size). The photo composites need ``photos``, a
    :class:`training.photos.SourcePhotos` of the prepared crops the editor will be given."""
    from smilecore import facemesh
    from smilecore.align import Alignment
    from smilecore.composite import composite_face
    from smilecore.model import SmileModel
    from smilecore.strength import face_strengths

    if how not in COMPOSITES:
        raise ValueError(f"unknown composite {how!r}; choose one of {', '.join(COMPOSITES)}")
    if how in PHOTO_COMPOSITES and photos is None:
        raise ValueError(f"the {how} composite needs the crops' source photos")
    from .photos import recrop, saved
    model = SmileModel(path)
    s = model.size
    eye = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    crop_as_photo = Alignment(matrix=eye, inverse=eye.copy(), size=s)

    def edit(crops: np.ndarray, lam: float) -> np.ndarray:
        outs = []
        for a in range(0, len(crops), 16):
            c = crops[a : a + 16]
            seen = facemesh.network().read(c)
            # as the engine does: a face that already smiles gets what it lacks (smilecore.strength),
            # and one that shows its own teeth keeps them (smilecore.facemesh)
            lams = face_strengths(lam, seen.level)
            o = model.run(c, lams)
            mask = facemesh.painted_mask(o.mask, seen.teeth)
            if how == "closed":
                mask = np.zeros_like(mask)
            if how == "network":
                x = network_input(c)
                y = composite(x, torch.from_numpy(o.rgb), torch.from_numpy(mask), torch.from_numpy(o.flow),
                              None if o.shade is None else torch.from_numpy(o.shade))
                outs.append(to_uint8(y))
                continue
            out = np.array(c, copy=True)
            for k in np.flatnonzero(lams):  # λ = 0 for a face: the crop itself, as the engine leaves it
                area = facemesh.edit_region(seen.outline[k], s, o.flow[k])
                if how in PHOTO_COMPOSITES:
                    src = photos.find(c[k])
                    photo = src.pixels.array
                    edited = photo.copy()
                    composite_face(photo, src.alignment, o.rgb[k], mask[k], o.flow[k], out=edited, face_area=area,
                                   shade=None if o.shade is None else o.shade[k])
                    out[k] = recrop(saved(edited, src) if how == "saved" else edited, src)
                    continue
                composite_face(np.ascontiguousarray(c[k]), crop_as_photo, o.rgb[k], mask[k], o.flow[k], out=out[k],
                               face_area=area, shade=None if o.shade is None else o.shade[k])
            outs.append(out)
        return np.concatenate(outs)

    return edit, s


def torch_editor(path: str | Path) -> tuple[Editor, int]:
    """An editor running a training checkpoint (EMA weights) in PyTorch at 256²."""
    from .export import load_generator

    net, _ = load_generator(path)

    @torch.no_grad()
    def edit(crops: np.ndarray, lam: float) -> np.ndarray:
        outs = []
        for a in range(0, len(crops), 16):
            x = network_input(crops[a : a + 16])
            rgb, mask, flow = net(x, torch.full((len(x), 1), float(lam)))
            outs.append(to_uint8(composite(x, rgb, mask.clamp(0, 1), flow)))
        return np.concatenate(outs)

    return edit, 256


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float [N,3,S,S] in [-1,1] -> uint8 [N,S,S,3]."""
    return ((x.clamp(-1, 1) + 1.0) * 127.5 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()


class DlibIdentity:
    """dlib's 128-D face descriptor of aligned crops, placed by the 5-point predictor run on a reference crop."""

    def __init__(self) -> None:
        from .landmarks68 import face_recognizer, shape_predictor

        self.sp = shape_predictor(5)
        self.rec = face_recognizer()

    def shape(self, crop: np.ndarray):
        """5-point shape of the face filling an aligned crop (the template's face box)."""
        from .landmarks68 import crop_rectangle

        return self.sp(np.ascontiguousarray(crop), crop_rectangle(crop.shape[0]))

    def descriptor(self, crop: np.ndarray, shape) -> np.ndarray:
        return np.array(self.rec.compute_face_descriptor(np.ascontiguousarray(crop), shape))


def contact_sheet(rows: list[list[np.ndarray]], cell: int = 160) -> np.ndarray:
    """Grid of uint8 crops (rows × columns), each resized to ``cell``², 2-px gaps."""
    gap = 2
    h = len(rows) * (cell + gap) - gap
    w = len(rows[0]) * (cell + gap) - gap
    sheet = np.full((h, w, 3), 255, np.uint8)
    for i, r in enumerate(rows):
        for j, img in enumerate(r):
            sheet[i * (cell + gap) : i * (cell + gap) + cell, j * (cell + gap) : j * (cell + gap) + cell] = cv2.resize(img, (cell, cell), interpolation=cv2.INTER_AREA)
    return sheet


def markdown_table(per_lam: dict[str, dict[str, float]]) -> str:
    """The metrics as a Markdown table, one row per λ (realism AUC: λ = 0 is the unedited ceiling)."""
    lines = [
        "| λ | smile p before | smile p after | non-smilers moved the right way | non-smilers rated smiling | identity dist (dlib) | SSIM vs teacher | L1 vs teacher | teeth shown (teacher) | tooth edges (teacher) | skin detail kept | reads as (engine, 10th / 50th / 90th pct.; weak) | realism AUC (vs real smiles) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for lam, m in per_lam.items():
        teeth = "–" if m.get("opened", 0) == 0 else f"{m['teeth_out']:.2f} ({m['teeth_teacher']:.2f})"
        edges = "–" if m.get("opened", 0) == 0 or "edges_out" not in m else f"{m['edges_out']:.1f} ({m['edges_teacher']:.1f})"
        real = "–" if "realism_auc" not in m else f"{m['realism_auc']:.3f}"
        detail = "–" if "detail_kept" not in m else f"{m['detail_kept']:.2f}"
        smiling = "–" if "smiling_after" not in m else f"{m['smiling_after']:.2f}"
        read = "–" if "read_median" not in m else (f"{m['read_p10']:.2f} / {m['read_median']:.2f} / {m['read_p90']:.2f}; "
                                                   f"{m['read_weak']:.0%}")
        lines.append(
            f"| {float(lam):+.0f} | {m['p_before']:.3f} | {m['p_after']:.3f} | {m['moved_right_way']:.2f} | {smiling} | "
            f"{m['identity_mean']:.3f} (max {m['identity_max']:.3f}) | {m['ssim_teacher']:.4f} | {m['l1_teacher']:.4f} | {teeth} | {edges} | {detail} | {read} | {real} |"
        )
    return "\n".join(lines)


def evaluate(edit: Editor, size: int, crops: np.ndarray, lm68: np.ndarray, rows: np.ndarray, lams: tuple[float, ...],
             sheet_rows: int, synth: Teacher, teacher_name: str, classifier: Path) -> tuple[dict[str, Any], np.ndarray]:
    """All metrics and the contact sheet for the faces ``rows``, against the teacher ``synth``
    (``teacher_name``: drawn or donors), with the smile classifier saved at ``classifier``."""
    from smilecore import facemesh

    from .classifier import load_classifier, smile_probability
    from .detail import detail_kept
    from .smile_level import reading

    clf = load_classifier(classifier)
    ident = DlibIdentity()
    inputs = np.stack([resize_crop(np.asarray(crops[r]), size) for r in rows])
    lms = [scale_landmarks(np.asarray(lm68[r], np.float32), crops.shape[1], size) for r in rows]
    p0 = smile_probability(clf, inputs)
    shapes = [ident.shape(c) for c in inputs]
    d0 = [ident.descriptor(c, s) for c, s in zip(inputs, shapes)]
    per: dict[str, dict[str, float]] = {}
    outputs: dict[float, np.ndarray] = {}
    for lam in lams:
        out = edit(inputs, lam)
        outputs[lam] = out
        pairs = [synth.synthesize(c, l, lam) for c, l in zip(inputs, lms)]
        targets = np.stack([p.target for p in pairs])
        opened = [i for i, p in enumerate(pairs) if p.mask.max() > 0.5]
        teeth_out = [teeth_fraction(out[i], pairs[i].landmarks[48:68]) for i in opened]
        teeth_teacher = [teeth_fraction(targets[i], pairs[i].landmarks[48:68]) for i in opened]
        edges_out = [tooth_edges(out[i], pairs[i].landmarks[48:68]) for i in opened]
        edges_teacher = [tooth_edges(targets[i], pairs[i].landmarks[48:68]) for i in opened]
        p1 = smile_probability(clf, out)
        non = p0 < 0.5
        moved = (p1 > p0) if lam > 0 else (p1 < p0) if lam < 0 else np.isclose(p1, p0, atol=1e-3)
        dist = np.array([np.linalg.norm(ident.descriptor(o, s) - d) for o, s, d in zip(out, shapes, d0)])
        detail = np.array([detail_kept(c, o, l) for c, o, l in zip(inputs, out, lms)])
        # how far the edits smile by the engine's own measure (its face mesh on the edits), λ > 0
        read = reading(facemesh.network().read(out).level, lam) if lam > 0 else {}
        xo = torch.stack([to_tensor(o) for o in out])
        xt = torch.stack([to_tensor(t) for t in targets])
        per[f"{lam:g}"] = {
            "p_before": float(p0.mean()),
            "p_after": float(p1.mean()),
            "moved_right_way": float(moved[non].mean()) if non.any() else float("nan"),
            # issue 15's bar at λ = 2: the share of non-smilers the classifier calls smiling afterwards
            "smiling_after": float((p1[non] > 0.5).mean()) if non.any() else float("nan"),
            "identity_mean": float(dist.mean()),
            "identity_max": float(dist.max()),
            "ssim_teacher": float(ssim(xo, xt).mean()),
            "l1_teacher": float((xo - xt).abs().mean()),
            "opened": len(opened),
            "teeth_out": float(np.mean(teeth_out)) if opened else float("nan"),
            "teeth_teacher": float(np.mean(teeth_teacher)) if opened else float("nan"),
            "edges_out": float(np.mean(edges_out)) if opened else float("nan"),
            "edges_teacher": float(np.mean(edges_teacher)) if opened else float("nan"),
            "detail_kept": float(np.nanmedian(detail)),
            **read,
        }
    n_sheet = min(sheet_rows, len(rows))
    t2 = [synth.synthesize(inputs[i], lms[i], 2.0).target for i in range(n_sheet)]
    grid = []
    for i in range(n_sheet):
        row = [inputs[i]]
        for lam in SHEET_LAMS:
            row.append(outputs[lam][i] if lam in outputs else edit(inputs[i : i + 1], lam)[0])
        row.append(t2[i])
        grid.append(row)
    result = {"faces": int(len(rows)), "non_smilers": int((p0 < 0.5).sum()), "size": size, "per_lambda": per, "teacher": teacher_name,
              "sheet_columns": ["input"] + [f"lambda={x:g}" for x in SHEET_LAMS] + ["teacher lambda=2"]}
    result["markdown"] = markdown_table(per)
    return result, contact_sheet(grid)


def evaluate_smilers(edit: Editor, size: int, crops: np.ndarray, rows: np.ndarray, classifier: Path,
                     lams: tuple[float, ...] = (-1.0, -2.0), sheet_rows: int = 6) -> tuple[dict[str, Any], np.ndarray]:
    """Negative strengths on real *smiling* faces: does the smile probability fall?

    Returns per-λ metrics (mean probability before/after, fraction of smilers, p > 0.5
    before, whose probability fell) and a contact sheet (input | each λ).
    """
    from .classifier import load_classifier, smile_probability

    clf = load_classifier(classifier)
    inputs = np.stack([resize_crop(np.asarray(crops[r]), size) for r in rows])
    p0 = smile_probability(clf, inputs)
    smilers = p0 > 0.5
    per: dict[str, dict[str, float]] = {}
    outs = {}
    for lam in lams:
        out = edit(inputs, lam)
        outs[lam] = out
        p1 = smile_probability(clf, out)
        per[f"{lam:g}"] = {"p_before": float(p0.mean()), "p_after": float(p1.mean()),
                           "fell": float((p1 < p0)[smilers].mean()) if smilers.any() else float("nan")}
    n = min(sheet_rows, len(rows))
    grid = [[inputs[i]] + [outs[lam][i] for lam in lams] for i in range(n)]
    lines = ["| λ (on smiling faces) | smile p before | smile p after | smilers whose p fell |", "|---:|---:|---:|---:|"]
    for lam, m in per.items():
        lines.append(f"| {float(lam):+.0f} | {m['p_before']:.3f} | {m['p_after']:.3f} | {m['fell']:.2f} |")
    return {"faces": int(len(rows)), "smilers": int(smilers.sum()), "per_lambda": per,
            "markdown": "\n".join(lines)}, contact_sheet(grid)


def smile_bars(edit: Editor, size: int, crops: np.ndarray, rows: np.ndarray, score: Callable[[np.ndarray], np.ndarray],
               lams: tuple[float, ...], what: str = "the realism sample's") -> dict[str, Any]:
    """Issue 15's smile bars on more faces: the faces ``rows`` (the realism sample's neutral side, about
    twice the faces of the main table, or every neutral face of the split) scored by ``score`` (uint8 crops
    -> smile probability) before and after each λ; per λ the non-smilers (p < 0.5 before), the share of them
    rated smiling afterwards (p > 0.5; the bar at λ = 2 is 90 %) and the share rated happier (the bar at
    λ = 1 is 95 %), and a table whose first column names the faces as ``what``."""
    inputs = np.stack([resize_crop(np.asarray(crops[r]), size) for r in rows])
    p0 = np.asarray(score(inputs))
    non = p0 < 0.5
    per: dict[str, dict[str, float]] = {}
    for lam in lams:
        p1 = np.asarray(score(edit(inputs, float(lam))))
        per[f"{float(lam):g}"] = {"non_smilers": int(non.sum()),
                                  "rated_smiling": float((p1[non] > 0.5).mean()) if non.any() else float("nan"),
                                  "happier": float((p1[non] > p0[non]).mean()) if non.any() else float("nan")}
    lines = [f"| λ ({what} {len(rows)} neutral faces) | non-smilers | rated happier | rated smiling |",
             "|---:|---:|---:|---:|"]
    for lam, m in per.items():
        lines.append(f"| {float(lam):+g} | {m['non_smilers']} | {m['happier']:.1%} | {m['rated_smiling']:.1%} |")
    return {"faces": int(len(rows)), "per_lambda": per, "markdown": "\n".join(lines)}


def photo_realism(model: str | Path, crops: np.ndarray, index: dict[str, np.ndarray], labels: dict[str, np.ndarray] | None,
                  split: str, faces: int, ev: EvaluateConfig, photos, composites: tuple[str, ...],
                  engine: dict[str, Any] | None = None) -> dict[str, Any]:
    """The realism test and the judges of other kinds (no CNN, no colour) on what ``smile`` makes and writes:
    the realism sample's faces edited by ``model`` with each of ``composites`` (:data:`PHOTO_COMPOSITES`), on
    their source photos (``photos``, a :class:`training.photos.SourcePhotos`). Returns per composite its
    ``per_lambda`` results and a ``markdown`` table, with ``engine`` (the main test's result) as its first rows."""
    from .realism import evaluate_realism, realism_sample

    sample = realism_sample(index, labels, split, seed=ev.seed, max_per_class=faces)
    lams = tuple(float(x) for x in ev.realism_lams)
    out: dict[str, Any] = {}
    for how in composites:
        edit, size = onnx_editor(model, how, photos)
        r, _ = evaluate_realism(edit, size, crops, index, sample, lams, folds=ev.realism_folds, repeats=ev.realism_repeats,
                                l2=float(ev.realism_l2), seed=ev.seed, colour=False, shape=False, mirror=False,
                                context=False, floor_splits=0)
        out[how] = {"per_lambda": r["per_lambda"], "ceiling": r["ceiling"]}
    out["markdown"] = photo_realism_markdown(out, engine)
    return out


def photo_realism_markdown(results: dict[str, Any], engine: dict[str, Any] | None = None) -> str:
    """:func:`photo_realism`'s ``results`` (composite -> ``per_lambda``) as a Markdown table, one row per
    composite and λ, after the main test's (``engine``) when given."""
    from .realism_table import OTHER_JUDGES

    rows = ([("engine (the crop as the photo)", engine)] if engine else []) + [
        (h, r) for h, r in results.items() if isinstance(r, dict) and "per_lambda" in r]
    sources = sorted({s for _, r in rows for m in r["per_lambda"].values() for s in m.get("by_source", {})})
    lines = ["The same test and judges on what `smile` makes and writes (photo: each face edited on its source photo at "
             "the photo's own resolution and cut again as the real smiles were; saved: that photo written as `smile` "
             "writes it, a JPEG with the source's own quantisation tables, and read back):", "",
             "| composite | λ | realism AUC | ± sd (folds) |" + "".join(f" {s} only |" for s in sources)
             + "".join(f" {name} |" for _, name in OTHER_JUDGES),
             "|---|---:|---:|---:|" + "---:|" * (len(sources) + len(OTHER_JUDGES))]
    for name, res in rows:
        for lam, m in res["per_lambda"].items():
            by = m.get("by_source", {})
            lines.append(f"| {name} | {float(lam):+g} | {m['auc']:.3f} | {m['sd']:.3f} |"
                         + "".join(f" {by[s]:.3f} |" if s in by else " – |" for s in sources)
                         + "".join(f" {m['auc' + k]:.3f} |" if f"auc{k}" in m else " – |" for k, _ in OTHER_JUDGES))
    return "\n".join(lines)


def run_realism(edit: Editor, size: int, crops: np.ndarray, index: dict[str, np.ndarray], labels: dict[str, np.ndarray] | None,
                split: str, faces: int, ev: EvaluateConfig, smilers: bool = False,
                cnn: bool = False) -> tuple[dict[str, Any], np.ndarray]:
    """The realism two-sample test (:mod:`training.realism`) with the ``[evaluate] realism_*`` settings;
    with ``smilers``, on faces that already smile (edited) against other people's real smiles."""
    from .realism import evaluate_realism, realism_sample

    seed = ev.seed
    sample = realism_sample(index, labels, split, seed=seed, max_per_class=faces, smilers=smilers)
    if len(sample.edit_rows) < 10:
        raise ValueError(f"only {len(sample.edit_rows)} matched faces for the realism test on the {split} split")
    lams = tuple(float(x) for x in ev.realism_lams)
    return evaluate_realism(edit, size, crops, index, sample, lams, folds=ev.realism_folds,
                            repeats=ev.realism_repeats, l2=float(ev.realism_l2), seed=seed, cnn=cnn)


def add_realism(per_lam: dict[str, dict[str, float]], realism: dict[str, Any]) -> None:
    """Copy the realism AUCs into the per-λ metrics: the edits' at their λ, the unedited ceiling at λ = 0."""
    for lam, m in per_lam.items():
        got = realism["ceiling"] if float(lam) == 0.0 else realism["per_lambda"].get(f"{float(lam):g}")
        if got is not None:
            m["realism_auc"] = got["auc"]
            m["realism_sd"] = got["sd"]


def main(argv: list[str] | None = None) -> int:
    """``python -m training evaluate [--model X.onnx | --checkpoint X.pt] [--faces N] [--split val|test] [--out DIR]
    [--realism-faces N]``."""
    ap = argparse.ArgumentParser(prog="python -m training evaluate", description="evaluate a smile model on the validation split")
    ap.add_argument("--config", default=None, help="config TOML (default training/config.toml)")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--model", default=None, help="exported .onnx model")
    src.add_argument("--checkpoint", default=None, help="training checkpoint (default runs/<run_name>/best.pt)")
    ap.add_argument("--faces", type=int, default=None, help="number of validation faces (default [evaluate] faces)")
    ap.add_argument("--split", default="val", choices=("val", "test"), help="split to evaluate (default val)")
    ap.add_argument("--out", default=None, help="output folder (default cache_dir/eval)")
    ap.add_argument("--teacher", default=None, choices=("drawn", "donors"),
                    help="teacher to compare against (default [evaluate] teacher)")
    ap.add_argument("--realism-faces", type=int, default=None,
                    help="most faces per side of the realism test (default [evaluate] realism_faces; 0 skips it)")
    ap.add_argument("--trained-judge", type=int, default=None, metavar="N",
                    help="also judge realism with the test's classifier fitted once on N faces per side of the train "
                         "split (default [evaluate] trained_judge_faces; 0 skips it)")
    ap.add_argument("--cnn-judge", action="store_true",
                    help="also judge realism with a small CNN on the grey lower face (training.realism_cnn; slower)")
    ap.add_argument("--composite", default="engine", choices=COMPOSITES,
                    help="how a --model's outputs go into the crop: the engine's composite (default), the contract's "
                         "formula alone, as evaluations up to model 1.4.0 did, the engine's without the painted mouth "
                         "(closed: a closed-lip smile), or the engine's on each face's source photo at its own "
                         "resolution, cropped again (photo), and that photo saved as smile saves it and read back (saved)")
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    ev = cfg.evaluate
    torch.set_num_threads(ev.threads)
    try:
        from .prepare import load_prepared

        crops, index = load_prepared(cfg)
        if args.model:
            photos = None
            if args.composite in PHOTO_COMPOSITES:
                from .photos import SourcePhotos

                photos = SourcePhotos(crops, index, cfg.paths.data_dir)
            edit, size = onnx_editor(args.model, args.composite, photos)
            what = f"{args.model} ({args.composite} composite)"
        else:
            ckpt = args.checkpoint or str(cfg.run_dir() / "best.pt")
            if not Path(ckpt).exists():
                raise FileNotFoundError(f"checkpoint {ckpt} does not exist: train first or pass --model/--checkpoint")
            edit, size = torch_editor(ckpt)
            what = ckpt

        teacher = args.teacher or ev.teacher
        if teacher not in ("drawn", "donors"):
            raise ValueError(f"unknown teacher {teacher!r}: use drawn or donors")
        synth = teacher_from_config(cfg.teacher, cfg.donor_path, drawn=teacher == "drawn")
        labels = load_labels(cfg.paths.cache_dir)
        rows = neutral_rows(index, labels, args.split)
        n = int(args.faces or ev.faces)
        rng = np.random.default_rng(ev.seed)
        rows = np.sort(rng.choice(rows, min(n, len(rows)), replace=False))
        lams = tuple(float(x) for x in ev.lams)
        result, sheet = evaluate(edit, size, crops, index["lm68"], rows, lams, ev.sheet_rows, synth, teacher, cfg.classifier_path)
        srows = smiling_rows(index, labels, args.split)
        srows = np.sort(rng.choice(srows, min(n // 2, len(srows)), replace=False))
        smilers, smile_sheet = evaluate_smilers(edit, size, crops, srows, cfg.classifier_path)
        result["smiling_faces"] = smilers
        n_real = int(args.realism_faces if args.realism_faces is not None else ev.realism_faces)
        realism_sheet = None
        tables = [markdown_table(result["per_lambda"])]
        if n_real > 0:
            try:
                result["realism"], realism_sheet = run_realism(edit, size, crops, index, labels, args.split, n_real, ev,
                                                               cnn=args.cnn_judge)
            except ValueError as exc:  # too few faces: the other metrics still stand
                print(f"warning: realism test skipped: {exc}", file=sys.stderr)
            else:
                add_realism(result["per_lambda"], result["realism"])
                from .realism_table import markdown as realism_markdown

                tables = [markdown_table(result["per_lambda"]), realism_markdown(result["realism"])]
            if ev.realism_smilers:
                try:
                    result["realism_smilers"], _ = run_realism(edit, size, crops, index, labels, args.split, n_real, ev,
                                                               smilers=True, cnn=args.cnn_judge)
                except ValueError as exc:
                    print(f"warning: realism test on smiling faces skipped: {exc}", file=sys.stderr)
                else:
                    tables.append(realism_markdown(result["realism_smilers"], edited="real smiles, edited,"))
            n_judge = int(args.trained_judge if args.trained_judge is not None else ev.trained_judge_faces)
            if n_judge > 0:
                from .realism import trained_judge, trained_judge_markdown

                try:
                    result["trained_judge"] = trained_judge(edit, size, crops, index, labels, args.split,
                                                            tuple(float(x) for x in ev.realism_lams), n_judge, n_real,
                                                            seed=ev.seed, l2=float(ev.realism_l2),
                                                            bands=tuple(ev.trained_judge_bands))
                except ValueError as exc:
                    print(f"warning: trained realism judge skipped: {exc}", file=sys.stderr)
                else:
                    tables.append(trained_judge_markdown(result["trained_judge"]))
            if args.model and args.composite == "engine" and ev.photo_composites and "realism" in result:
                from .photos import SourcePhotos

                try:
                    result["photo_realism"] = photo_realism(args.model, crops, index, labels, args.split, n_real, ev,
                                                            SourcePhotos(crops, index, cfg.paths.data_dir),
                                                            tuple(ev.photo_composites), result["realism"])
                except ValueError as exc:  # the photos are not where prepare found them
                    print(f"warning: realism on the photos skipped: {exc}", file=sys.stderr)
                else:
                    tables.append(result["photo_realism"]["markdown"])
            from .classifier import load_classifier, smile_probability
            from .realism import realism_sample

            sample = realism_sample(index, labels, args.split, seed=ev.seed, max_per_class=n_real)
            if len(sample.edit_rows):
                clf = load_classifier(cfg.classifier_path)
                result["smile_bars"] = smile_bars(edit, size, crops, sample.edit_rows, lambda x: smile_probability(clf, x),
                                                  tuple(float(x) for x in ev.realism_lams))
                tables.append(result["smile_bars"]["markdown"])
                if ev.smile_bars_every:
                    every = neutral_rows(index, labels, args.split)
                    result["smile_bars_every"] = smile_bars(edit, size, crops, every, lambda x: smile_probability(clf, x),
                                                            tuple(float(x) for x in ev.realism_lams),
                                                            what="every one of the split's")
                    tables.append(result["smile_bars_every"]["markdown"])
            if ev.geometry_lams:
                from .realism_geometry import geometry_markdown, mouth_geometry

                try:
                    result["geometry"] = mouth_geometry(edit, size, crops, index, sample.edit_rows, sample.real_rows,
                                                        tuple(float(x) for x in ev.geometry_lams))
                except ValueError as exc:
                    print(f"warning: mouth geometry skipped: {exc}", file=sys.stderr)
                else:
                    tables.append(geometry_markdown(result["geometry"]))
        result["markdown"] = "\n\n".join(tables + [smilers["markdown"]])
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else cfg.cache / "eval"
    out.mkdir(parents=True, exist_ok=True)
    result["model"] = str(what)
    result["split"] = args.split
    (out / "metrics.json").write_text(json.dumps(result, indent=1))
    cv2.imwrite(str(out / "contact_sheet.png"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(out / "contact_sheet_smilers.png"), cv2.cvtColor(smile_sheet, cv2.COLOR_RGB2BGR))
    if realism_sheet is not None:
        cv2.imwrite(str(out / "realism_sheet.png"), cv2.cvtColor(realism_sheet, cv2.COLOR_RGB2BGR))
    print(f"{what} on {result['faces']} {args.split} faces ({result['non_smilers']} non-smiling before):\n")
    print(result["markdown"])
    print(f"\nwrote {out / 'metrics.json'} and {out / 'contact_sheet.png'}")
    return 0
