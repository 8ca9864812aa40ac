"""``python -m training strength-choice``: how real would the edits look if each face got the size of
smile that looks most real on it? A study, not part of the engine.

Every face of the realism sample is edited at a few candidate strengths around the one asked (λ × 0.5,
1, 2 by default). A *judge* (the realism test's features and logistic regression, :mod:`training.realism`)
is fitted on the train split's edits at every candidate against the train split's real smiles; on each
face it scores the candidates, and the face keeps the one it finds most real, less a penalty on how far
each candidate moves the face from itself (dlib's identity distance, its mean per candidate over the
train faces: a prior, not the face's own distance). The penalty's weight is chosen on the train split
so that the mean identity distance there stays at ``--identity``. Then the realism test and the
identity distance are measured on the chosen edits of the validation (or test) split.

With ``--closed`` one more candidate comes first: the strength asked without its painted mouth (the
engine's composite with the painted mask at zero, :data:`training.evaluate.COMPOSITES` ``"closed"``), a
closed-lip smile that in the engine would come from the same run as the strength asked.

The choice needs every candidate's edit: in the engine that is one run of the smile model per candidate
(see docs/realism.md, twenty-sixth session, for what it measured and why it is not the engine's rule).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

#: Candidate strengths as multiples of the strength asked.
MULTIPLES = (0.5, 1.0, 2.0)


@dataclass
class Candidates:
    """One sample's faces edited at each candidate strength."""

    features: np.ndarray  #: (n, k, d) the realism test's features of each face's edit at each candidate
    identity: np.ndarray  #: (n, k) dlib's distance of each edit from its input


def fit_judge(edits: np.ndarray, reals: np.ndarray, l2: float = 1.0) -> Callable[[np.ndarray], np.ndarray]:
    """A logistic regression (the realism test's, :func:`training.realism.fit_logistic`) telling
    ``edits`` ((m, d) features, any candidates pooled) from ``reals`` ((r, d)); returns its decision
    function (higher: more surely an edit)."""
    from .realism import fit_logistic

    model = fit_logistic(np.concatenate([edits, reals]), np.r_[np.ones(len(edits)), np.zeros(len(reals))], l2=l2)
    return model.decision


def cross_fitted_scores(cands: Candidates, reals: np.ndarray, person: np.ndarray, seed: int = 0,
                        l2: float = 1.0) -> np.ndarray:
    """(n, k) judge scores of every face's candidates, each face scored by a judge fitted on the other
    half of the people (two halves), so that no face chooses by a judge that saw it."""
    rng = np.random.default_rng(seed)
    people = np.unique(person)
    first = np.isin(person, people[rng.random(len(people)) < 0.5])
    n, k, d = cands.features.shape
    scores = np.zeros((n, k))
    for fit_on in (first, ~first):
        if not fit_on.any() or fit_on.all():
            raise ValueError("too few people to fit the judge on one half and score the other")
        judge = fit_judge(cands.features[fit_on].reshape(-1, d), reals, l2)
        scores[~fit_on] = judge(cands.features[~fit_on].reshape(-1, d)).reshape(-1, k)
    return scores


def choose(scores: np.ndarray, prior: np.ndarray, weight: float) -> np.ndarray:
    """(n,) the candidate each face keeps: the lowest ``scores`` (n, k) + ``weight`` · ``prior`` (k,)."""
    return np.argmin(np.asarray(scores) + weight * np.asarray(prior)[None, :], axis=1)


def calibrate(scores: np.ndarray, identity: np.ndarray, prior: np.ndarray, target: float,
              weights: Sequence[float] = tuple(np.linspace(0.0, 100.0, 801))) -> float:
    """The smallest of ``weights`` whose choices (:func:`choose`) keep the mean of ``identity`` (n, k)
    over the chosen candidates at or under ``target``; the largest weight if none does."""
    rows = np.arange(len(scores))
    for w in weights:
        if identity[rows, choose(scores, prior, w)].mean() <= target:
            return float(w)
    return float(weights[-1])


def chosen(values: np.ndarray, picks: np.ndarray) -> np.ndarray:
    """``values`` (n, k, ...) at each face's chosen candidate ``picks`` (n,)."""
    return np.asarray(values)[np.arange(len(picks)), picks]


def _candidates(edits: Sequence[tuple[Callable, float]], size: int, crops, rows: np.ndarray, identity,
                chunk: int = 100) -> Candidates:
    """The realism test's features and dlib's distance of ``rows``' faces edited by each candidate
    ``(editor, strength)`` of ``edits``."""
    from .dataset import resize_crop
    from .realism import features

    feats, dist = [], []
    for a in range(0, len(rows), chunk):
        faces = np.stack([resize_crop(np.asarray(crops[r]), size) for r in rows[a:a + chunk]])
        shapes = [identity.shape(f) for f in faces]
        ref = [identity.descriptor(f, s) for f, s in zip(faces, shapes)]
        f_c, d_c = [], []
        for edit, lam in edits:
            out = edit(faces, float(lam))
            f_c.append(features(out, False))
            d_c.append([float(np.linalg.norm(r - identity.descriptor(o, s))) for r, o, s in zip(ref, out, shapes)])
        feats.append(np.stack(f_c, 1))
        dist.append(np.array(d_c).T)
        print(f"  {min(a + chunk, len(rows))}/{len(rows)} faces edited", file=sys.stderr, flush=True)
    return Candidates(np.concatenate(feats).astype(np.float32), np.concatenate(dist))


def main(argv: list[str] | None = None) -> int:
    """``python -m training strength-choice --model X.onnx [--strength 1] [--multiples 0.5 1 2] [--closed]
    [--identity 0.245] [--split val|test] [--train-faces N]``: prints one JSON line per choice."""
    ap = argparse.ArgumentParser(prog="python -m training strength-choice", description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=None)
    ap.add_argument("--model", required=True, help="an exported smile model (.onnx), run through the engine's composite")
    ap.add_argument("--strength", type=float, default=1.0, help="the strength asked (default 1)")
    ap.add_argument("--multiples", type=float, nargs="+", default=list(MULTIPLES),
                    help=f"candidate strengths as multiples of --strength (default {' '.join(map(str, MULTIPLES))})")
    ap.add_argument("--closed", action="store_true",
                    help="one more candidate, first: the strength asked without its painted mouth (a closed-lip smile; "
                         "in the engine the same run of the model as the strength asked)")
    ap.add_argument("--identity", type=float, default=0.245,
                    help="mean identity distance the choices may reach on the train split (default 0.245)")
    ap.add_argument("--split", default="val", choices=("val", "test"))
    ap.add_argument("--train-faces", type=int, default=700, help="most faces per side of the train split's sample (default 700)")
    args = ap.parse_args(argv)
    if args.strength <= 0 or any(m <= 0 for m in args.multiples):
        raise SystemExit("error: --strength and --multiples must be above 0 (the study is about how much smile to add)")
    if not Path(args.model).is_file():
        raise FileNotFoundError(2, "no such model file", args.model)

    from .config import load_config
    from .dataset import load_labels, resize_crop
    from .evaluate import DlibIdentity, onnx_editor
    from .prepare import load_prepared
    from .realism import features, realism_sample, stratum_keys, two_sample_auc

    cfg = load_config(args.config)
    ev = cfg.evaluate
    crops, index = load_prepared(cfg)
    labels = load_labels(cfg.cache)
    edit, size = onnx_editor(args.model)
    ident = DlibIdentity()
    lams = [args.strength * m for m in args.multiples]
    edits = [(edit, lam) for lam in lams]
    names: list[float | str] = list(lams)
    if args.closed:
        edits.insert(0, (onnx_editor(args.model, "closed")[0], args.strength))
        names.insert(0, f"{args.strength:g} closed")
    person = index["person"]

    def reals(rows: np.ndarray) -> np.ndarray:
        return features(np.stack([resize_crop(np.asarray(crops[r]), size) for r in rows]), False)

    train = realism_sample(index, labels, "train", seed=ev.seed, max_per_class=args.train_faces)
    held = realism_sample(index, labels, args.split, seed=ev.seed, max_per_class=ev.realism_faces)
    c_train = _candidates(edits, size, crops, train.edit_rows, ident)
    c_held = _candidates(edits, size, crops, held.edit_rows, ident)
    r_train, r_held = reals(train.real_rows), reals(held.real_rows)

    scores_train = cross_fitted_scores(c_train, r_train, person[train.edit_rows], seed=ev.seed)
    d = c_train.features.shape[2]
    judge = fit_judge(c_train.features.reshape(-1, d), r_train)
    scores_held = judge(c_held.features.reshape(-1, d)).reshape(len(held.edit_rows), -1)
    prior = c_train.identity.mean(0)

    def test(x1: np.ndarray) -> dict[str, float]:
        r = two_sample_auc(x1, r_held, person[held.edit_rows], person[held.real_rows], stratum_keys(index, held.edit_rows),
                           stratum_keys(index, held.real_rows), ev.realism_folds, ev.realism_repeats, float(ev.realism_l2),
                           ev.seed, index["source"][held.edit_rows], index["source"][held.real_rows])
        return {"realism": round(r["auc"], 3), "sd": round(r["sd"], 3), **{k: round(v, 3) for k, v in r["by_group"].items()}}

    for j, name in enumerate(names):
        print(json.dumps({"split": args.split, "strengths": [name], **test(c_held.features[:, j]),
                          "identity": round(float(c_held.identity[:, j].mean()), 4)}), flush=True)
    weight = calibrate(scores_train, c_train.identity, prior, args.identity)
    picks = choose(scores_held, prior, weight)
    print(json.dumps({"split": args.split, "strengths": names, "chosen": np.bincount(picks, minlength=len(names)).tolist(),
                      **test(chosen(c_held.features, picks)), "identity": round(float(chosen(c_held.identity, picks).mean()), 4),
                      "weight": weight, "train_identity": round(float(chosen(c_train.identity, choose(scores_train, prior, weight)).mean()), 4)}),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
