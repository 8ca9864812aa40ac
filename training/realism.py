"""Realism: can a simple two-sample test tell the model's edited faces from real smiles?

A classifier is trained to separate two sets of aligned face crops; if it cannot do better than chance
on people it never saw (ROC AUC 0.5) the edited faces pass, statistically, for real smiles; 1.0: always told.

What is compared
----------------
* **edited** (class 1): the split's neutral faces (:func:`training.dataset.neutral_rows`:
  ``expressions`` photos labelled neutral and adult UTKFace faces our classifier rates
  neutral, frontal only, no GENKI-4K) after the model at strength λ (1 and 2 by default) —
  or *unedited*, which is the **ceiling**: how far a plain neutral face is from a smile.
* **real** (class 0): real smiling faces of the same split (:func:`training.dataset.smiling_rows`:
  ``expressions`` photos labelled happiness and UTKFace faces the classifier rates smiling,
  p > 0.9) with the neutral side's filters (frontal, no children), of **other people**: a
  person with photos on both sides (in ``expressions`` everyone has both) is given to one
  side only, at random; nobody contributes more than 3 photos to a side.
* the **floor**: real smiles against real smiles of other people (the real set split in two
  by person, several times): ≈ 0.5 unless something other than the faces leaks into the test;
  the spread over the halvings shows how far a test of this size strays from 0.5 by chance.

The same real smiles and the same person-disjoint folds serve every condition, so the
ceiling, λ = 1 and λ = 2 differ only in what was done to the same neutral faces.

Confounds kept out
------------------
The sources differ far more than smiles do (UTKFace 200 px colour, ``expressions`` mostly
256 px grey LFW plus small colour crops): on the validation split the same classifier tells
UTKFace from ``expressions`` faces with AUC 0.89 in grey and 0.99 with colour features, so
unmatched it would partly measure the source.  Hence:

* **source, colour and resolution are matched**: every face falls into a stratum (source,
  grey or colour photo, detector face width below or from ``size_split`` = 100 source px;
  for UTKFace also gender and age band 13–29 / 30–49 / 50+ from its file names, because about
  2 in 3 of its smiles but 2 in 5 of its neutral faces are women, and the neutral faces are
  older); both classes keep exactly the same number of faces from every stratum (the smaller
  side's count, scaled down together to at most ``max_per_class``), so the source mix, the
  grey share, the blur of upsampling, gender and age (UTKFace) are the same on both sides;
* the folds keep the strata: each person goes to the fold with the fewest faces of its own
  class and stratum, so every held-out fold is matched too;
* **grey**: the features are computed on the luma (ITU-R 601) of the crop; the ``colour``
  variant adds the mean and spread of the two chroma channels per cell, to check both ways;
* **same crop resolution**: both sides are aligned crops of the same size (the model's S),
  cut from the same template window and resampled to 48×80 px by area averaging.

Features and classifier
-----------------------
The window x ∈ [0.18, 0.82] S, y ∈ [0.50, 0.92] S of the aligned crop: mouth, cheeks and chin
(on the prepared faces the nose tip lies at 0.53 S, the mouth corners at 0.37/0.63 S, the jaw
at mouth height at 0.22/0.78 S and the chin at 0.89 S, medians; a window reaching 0.96 S
showed mostly neck, collar and the mirrored padding below small sources), as HOG (9
orientations, 8-px cells, 2×2 blocks, L2-Hys; 1,620 values) plus uniform LBP histograms (8
neighbours, radius 1; 10 bins in each cell of a 3×5 grid; 150 values).  An L2-regularised
logistic regression on features standardised by the training fold (numpy, accelerated
gradient descent) scores the held-out fold; its ROC AUC (Mann–Whitney, ties count half) is
averaged over ``folds`` person-disjoint folds × ``repeats`` fold assignments, with the
standard deviation over those folds as the spread (it leaves out the luck of drawing the
sample; the floor's spread over its halvings shows that part).  The L2 weight (``[evaluate]
realism_l2`` = 1) was chosen on the train split's unedited-vs-real test: 0.01–1 give the same
AUC, 10 and 100 lower.  Per source, the AUC of the pooled held-out scores of that source's
faces says whether one source drives the result (UTKFace's smiles and neutrals are the ones
our classifier is surest of, p > 0.9 and p < 0.1, so they differ more than average faces do;
``expressions`` has human labels).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import cv2
import numpy as np

from .config import JUDGE_BANDS

#: Lower-face window (x0, y0, x1, y1) as fractions of the aligned crop's side.
WINDOW = (0.18, 0.50, 0.82, 0.92)
#: (height, width) the window is resampled to before the features.
PATCH = (48, 80)
#: Grid (rows, columns) of the LBP histograms and of the colour statistics.
GRID = (3, 5)
#: Luma weights (ITU-R 601), as used by OpenCV's RGB -> grey.
LUMA = np.array([0.299, 0.587, 0.114], np.float32)

Editor = Callable[[np.ndarray, float], np.ndarray]  # uint8 [N,S,S,3], λ -> uint8 [N,S,S,3]
#: The scales the trained judge can also be run on alone (:func:`band_features`): ``fine``, the grey
#: window less its Gaussian blur of :data:`FINE_SIGMA` window pixels (about 3 crop pixels: teeth, lip
#: edges, creases, skin), through the same HOG + LBP; ``coarse``, the grey window's means over a
#: :data:`COARSE_GRID` grid (the light, as the transported shade moves it).
BANDS = JUDGE_BANDS
FINE_SIGMA = 1.5
COARSE_GRID = (12, 20)


# ------------------------------------------------------------------ features

def lower_face(crops: np.ndarray, window: tuple[float, float, float, float] = WINDOW, patch: tuple[int, int] = PATCH) -> np.ndarray:
    """The lower-face ``window`` (crop fractions) of aligned uint8 crops [N,S,S,3] as float32 [N,*patch,3] in 0…255."""
    crops = np.asarray(crops)
    s = crops.shape[1]
    x0, y0, x1, y1 = (int(round(f * s)) for f in window)
    out = np.empty((len(crops), patch[0], patch[1], 3), np.float32)
    for i, c in enumerate(crops):
        out[i] = cv2.resize(np.ascontiguousarray(c[y0:y1, x0:x1]), (patch[1], patch[0]), interpolation=cv2.INTER_AREA)
    return out


def _cells(img: np.ndarray) -> list[np.ndarray]:
    """The GRID cells of a 2-D or 3-D patch, row by row."""
    h, w = img.shape[:2]
    ys = np.linspace(0, h, GRID[0] + 1).round().astype(int)
    xs = np.linspace(0, w, GRID[1] + 1).round().astype(int)
    return [img[ys[i] : ys[i + 1], xs[j] : xs[j + 1]] for i in range(GRID[0]) for j in range(GRID[1])]


def features(crops: np.ndarray, colour: bool = False, window: tuple[float, float, float, float] = WINDOW,
             patch: tuple[int, int] = PATCH) -> np.ndarray:
    """HOG + LBP features [N, 1770] of the crops' grey lower face (+ 60 chroma statistics with ``colour``;
    another ``window``/``patch``, see :func:`lower_face`: the same features of another part)."""
    patches = lower_face(crops, window, patch)
    rows = []
    for p in patches:
        grey = p @ LUMA
        f = [_hog_lbp(grey)]
        if colour:
            chroma = np.stack([p[..., 0] - grey, p[..., 2] - grey], -1) / 255.0
            f += [np.concatenate([c.reshape(-1, 2).mean(0), c.reshape(-1, 2).std(0)]) for c in _cells(chroma)]
        rows.append(np.concatenate(f).astype(np.float32))
    return np.stack(rows) if rows else np.zeros((0, 0), np.float32)


#: HOG of the window: cell side (pixels), cells per block side, orientation bins (over 0–180°); its
#: blocks over a :data:`PATCH` window (rows, columns); LBP (8 neighbours, "uniform"): bins per cell.
HOG_CELL, HOG_BLOCK, HOG_ORIENTATIONS = 8, 2, 9
HOG_BLOCKS = (PATCH[0] // HOG_CELL - HOG_BLOCK + 1, PATCH[1] // HOG_CELL - HOG_BLOCK + 1)
HOG_FEATURES = HOG_BLOCKS[0] * HOG_BLOCKS[1] * HOG_BLOCK * HOG_BLOCK * HOG_ORIENTATIONS
LBP_BINS = 10


def mirror_pooled_features(crops: np.ndarray) -> np.ndarray:
    """:func:`features` (grey) averaged over each crop and its mirror image: a judge on them cannot
    use which way a face or a mouth leans (real smiles lean a little one way in our data, and a
    model and its own mirror image read 0.03 apart on the grey test: docs/realism.md, thirtieth
    session)."""
    crops = np.asarray(crops)
    return (features(crops) + features(np.ascontiguousarray(crops[:, :, ::-1]))) / 2


#: Where the mean of a sample's face regions (the engine's edit regions, unedited) is at most this, the
#: crop counts as context: no face's edit reaches it, in practice (:func:`context_area`).
CONTEXT_REACH = 0.05
#: The grey the context measure paints over every face (:func:`context_only`).
CONTEXT_GREY = 128


def context_area(crops: np.ndarray) -> np.ndarray:
    """The part of the aligned crop (bool [S, S]) that the edit region of at most :data:`CONTEXT_REACH`
    of ``crops``' faces covers (:func:`smilecore.facemesh.edit_region` of each face's own outline):
    hair, background, neck and collar, which the engine leaves as they are (issue 15: nothing outside the
    face's landmark region changes), whatever the model."""
    from smilecore import facemesh

    crops = np.asarray(crops)
    size = crops.shape[1]
    outline = np.concatenate([facemesh.network().read(crops[a : a + 64]).outline for a in range(0, len(crops), 64)])
    covered = np.zeros((size, size), np.float64)
    for poly in outline:
        covered += facemesh.edit_region(poly, size) > 0
    return covered / max(len(crops), 1) <= CONTEXT_REACH


def context_only(crops: np.ndarray, area: np.ndarray) -> np.ndarray:
    """``crops`` with everything but the context ``area`` (:func:`context_area`) painted flat grey: what
    a realism test still reads when no face can be told (docs/realism.md, thirty-first session)."""
    out = np.array(crops, copy=True)
    out[:, ~area] = CONTEXT_GREY
    return out


def _hog_lbp(grey: np.ndarray) -> np.ndarray:
    """The HOG of a grey window (0…255) and its LBP histograms per :data:`GRID` cell, in one vector."""
    from skimage.feature import hog, local_binary_pattern

    f = [hog(grey, orientations=HOG_ORIENTATIONS, pixels_per_cell=(HOG_CELL, HOG_CELL), cells_per_block=(HOG_BLOCK, HOG_BLOCK),
             block_norm="L2-Hys", feature_vector=True)]
    lbp = local_binary_pattern(np.clip(grey + 0.5, 0, 255).astype(np.uint8), 8, 1, method="uniform")
    f += [np.bincount(c.astype(np.int64).ravel(), minlength=LBP_BINS)[:LBP_BINS] / c.size for c in _cells(lbp)]
    return np.concatenate(f)


def band_features(crops: np.ndarray, band: str | None = None) -> np.ndarray:
    """:func:`features` (``band`` None), or the features of one scale of the grey lower face alone (one
    of :data:`BANDS`): where the realism test's tell lies, by scale (docs/realism.md, fifteenth session)."""
    if band is None:
        return features(crops)
    if band not in BANDS:
        raise ValueError(f"unknown band {band!r}; choose one of {', '.join(BANDS)}")
    greys = lower_face(crops) @ LUMA
    if band == "coarse":
        h, w = COARSE_GRID
        return np.stack([cv2.resize(g, (w, h), interpolation=cv2.INTER_AREA).ravel() / 255.0 for g in greys]).astype(np.float32) \
            if len(greys) else np.zeros((0, h * w), np.float32)
    rows = [_hog_lbp(g - cv2.GaussianBlur(g, (0, 0), FINE_SIGMA) + 128.0).astype(np.float32) for g in greys]
    return np.stack(rows) if rows else np.zeros((0, 0), np.float32)


# ------------------------------------------------------------------ classifier and AUC

def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for binary ``labels`` (1 = positive): the chance that a
    random positive scores above a random negative, ties counting half (Mann–Whitney U / n₁n₀)."""
    s = np.asarray(scores, np.float64).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    if s.shape != y.shape:
        raise ValueError(f"{s.shape[0]} scores for {y.shape[0]} labels")
    n1 = int(y.sum())
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        raise ValueError("the ROC AUC needs both classes")
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    mean_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based average rank of each distinct score
    ranks = mean_rank[inverse]
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


@dataclass
class Logistic:
    """A fitted logistic regression: standardisation, weights and bias."""

    mean: np.ndarray
    scale: np.ndarray
    w: np.ndarray
    b: float
    iterations: int = 0

    def decision(self, x: np.ndarray) -> np.ndarray:
        """The log-odds of class 1."""
        return ((np.asarray(x, np.float64) - self.mean) / self.scale) @ self.w + self.b

    def probability(self, x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.decision(x)))


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, max_iter: int = 3000, tol: float = 1e-6) -> Logistic:
    """L2-regularised logistic regression: minimises mean log-loss + ``l2``/2 · |w|² (the bias is
    not penalised) on features standardised to zero mean and unit variance, by Nesterov's
    accelerated gradient descent with step 1/L (L the gradient's Lipschitz constant)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y).astype(np.float64).ravel()
    if x.ndim != 2 or len(x) != len(y) or len(x) == 0:
        raise ValueError(f"need x [n,d] and y [n], got {x.shape} and {y.shape}")
    mean = x.mean(0)
    scale = x.std(0)
    scale[scale < 1e-12] = 1.0
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    n, d = z.shape
    reg = np.full(d, float(l2))
    reg[-1] = 0.0
    lipschitz = np.linalg.norm(z, 2) ** 2 / (4.0 * n) + float(l2)
    step = 1.0 / lipschitz
    w = np.zeros(d)
    v = w.copy()
    t = 1.0
    it = 0
    for it in range(1, max_iter + 1):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ v, -50, 50)))
        grad = z.T @ (p - y) / n + reg * v
        w_next = v - step * grad
        t_next = (1.0 + np.sqrt(1.0 + 4.0 * t * t)) / 2.0
        v = w_next + ((t - 1.0) / t_next) * (w_next - w)
        converged = np.abs(w_next - w).max() < tol
        w, t = w_next, t_next
        if converged:
            break
    return Logistic(mean, scale, w[:-1], float(w[-1]), it)


# ------------------------------------------------------------------ person-disjoint folds

def person_folds(person: Sequence[str], y: np.ndarray, strata: Sequence[str], k: int, rng: np.random.Generator) -> np.ndarray:
    """A fold number in 0…k−1 for every sample, every person's samples in one fold.

    Persons are placed largest first (random order among equals) into the fold holding the
    fewest samples of their own class and stratum (ties: the smaller fold overall), so each
    fold keeps the class balance and the strata of the whole.
    """
    person = np.asarray(person)
    y = np.asarray(y)
    strata = np.asarray(strata)
    if k < 2:
        raise ValueError("need at least 2 folds")
    people, first, inverse, counts = np.unique(person, return_index=True, return_inverse=True, return_counts=True)
    order = rng.permutation(len(people))
    order = order[np.argsort(-counts[order], kind="stable")]
    load: dict[tuple[Any, Any], np.ndarray] = {}
    total = np.zeros(k)
    fold_of = np.empty(len(people), np.int64)
    for p in order:
        key = (y[first[p]], strata[first[p]])
        ld = load.setdefault(key, np.zeros(k))
        f = int(np.lexsort((rng.random(k), total, ld))[0])
        fold_of[p] = f
        ld[f] += counts[p]
        total[f] += counts[p]
    return fold_of[inverse]


def two_sample_auc(x1: np.ndarray, x0: np.ndarray, person1: Sequence[str], person0: Sequence[str],
                   strata1: Sequence[str], strata0: Sequence[str], folds: int = 5, repeats: int = 2,
                   l2: float = 1.0, seed: int = 0, group1: Sequence[str] | None = None,
                   group0: Sequence[str] | None = None,
                   fit: Callable[[np.ndarray, np.ndarray, int], Callable[[np.ndarray], np.ndarray]] | None = None
                   ) -> dict[str, Any]:
    """Cross-validated ROC AUC of a logistic regression (or of ``fit(x, y, seed)``, which returns a
    scorer, e.g. :func:`training.realism_cnn.fit_cnn` on windows) telling sample 1 from sample 0.

    The two samples must not share a person.  Returns ``auc`` (mean over the held-out folds),
    ``sd`` (their standard deviation), ``fold_aucs``, ``n1`` and ``n0``; with ``group1``/``group0``
    (e.g. the source of each face) also ``by_group``: per group, the AUC of the pooled held-out
    scores of its faces, averaged over the repeats.  The folds depend only on the persons,
    classes, strata and ``seed``, so two calls with the same people (e.g. the same neutral faces
    edited at two strengths) use the same folds.
    """
    p1, p0 = np.asarray(person1), np.asarray(person0)
    if np.intersect1d(p1, p0).size:
        raise ValueError("the two samples share people: a two-sample test needs different people on each side")
    x = np.vstack([np.asarray(x1, np.float64), np.asarray(x0, np.float64)])
    y = np.concatenate([np.ones(len(x1), np.int64), np.zeros(len(x0), np.int64)])
    person = np.concatenate([p1, p0])
    strata = np.concatenate([np.asarray(strata1), np.asarray(strata0)])
    group = None if group1 is None or group0 is None else np.concatenate([np.asarray(group1), np.asarray(group0)])
    aucs: list[float] = []
    by_group: dict[str, list[float]] = {}
    for r in range(repeats):
        fold = person_folds(person, y, strata, folds, np.random.default_rng([seed, r]))
        held_out = np.full(len(y), np.nan)
        for f in range(folds):
            test = fold == f
            train = ~test
            if len(np.unique(y[test])) < 2 or len(np.unique(y[train])) < 2:
                continue
            if fit is None:
                held_out[test] = fit_logistic(x[train], y[train], l2).decision(x[test])
            else:
                held_out[test] = fit(x[train], y[train], seed * 1000 + r * folds + f)(x[test])
            aucs.append(roc_auc(held_out[test], y[test]))
        if group is not None:
            for g in np.unique(group):
                m = (group == g) & np.isfinite(held_out)
                if len(np.unique(y[m])) == 2:
                    by_group.setdefault(str(g), []).append(roc_auc(held_out[m], y[m]))
    a = np.array(aucs)
    out: dict[str, Any] = {"auc": float(a.mean()) if len(a) else float("nan"), "sd": float(a.std()) if len(a) else float("nan"),
                           "fold_aucs": [round(float(v), 4) for v in a], "n1": int(len(x1)), "n0": int(len(x0))}
    if group is not None:
        out["by_group"] = {g: float(np.mean(v)) for g, v in by_group.items()}
    return out


# ------------------------------------------------------------------ which faces

#: Age bins (years, lower edges) of the UTKFace strata.
AGE_BINS = (30, 50)


def _utk_gender(file: str) -> str:
    """``female``/``male`` from a UTKFace file name ``AGE_GENDER_RACE_DATE.jpg`` (``?`` if it does not say)."""
    parts = file.replace("\\", "/").rsplit("/", 1)[-1].split("_")
    return {"0": "male", "1": "female"}.get(parts[1] if len(parts) > 1 else "", "?")


def stratum_keys(index: dict[str, np.ndarray], rows: np.ndarray, size_split: int = 100,
                 demographics: bool = True) -> np.ndarray:
    """``source/grey|colour/small|large`` for each row (face width in source px below / from ``size_split``);
    with ``demographics``, UTKFace rows add their gender and :func:`age_band` (``/female/30-49``): women smile
    more often in UTKFace (about 2 in 3 of its smiles, 2 in 5 of its neutral faces) and its
    neutral faces are older, so both would otherwise tell the classes apart."""
    rows = np.asarray(rows, np.int64)
    src = index["source"][rows].astype(str)
    grey = index["gray"][rows] if "gray" in index else np.zeros(len(rows), bool)
    px = index["face_px"][rows] if "face_px" in index else np.full(len(rows), size_split)
    keys = [f"{s}/{'grey' if g else 'colour'}/{'small' if p < size_split else 'large'}" for s, g, p in zip(src, grey, px)]
    if demographics and "file" in index and "age" in index:
        for i, r in enumerate(rows):
            if src[i] == "utkface":
                keys[i] += f"/{_utk_gender(str(index['file'][r]))}/{age_band(int(index['age'][r]))}"
    return np.array(keys, dtype=str)


def age_band(age: int) -> str:
    """``<30``, ``30-49``, ``50+`` (with the default AGE_BINS); ``?`` for an unknown (negative) age."""
    if age < 0:
        return "?"
    edges = list(AGE_BINS)
    if age < edges[0]:
        return f"<{edges[0]}"
    for lo, hi in zip(edges, edges[1:]):
        if lo <= age < hi:
            return f"{lo}-{hi - 1}"
    return f"{edges[-1]}+"


def assign_people(rows1: np.ndarray, rows0: np.ndarray, person: np.ndarray,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rows of both sets with every person on one side only: a person found in both goes, with
    all their rows, to side 1 or side 0 at random (even odds)."""
    rows1, rows0 = np.asarray(rows1, np.int64), np.asarray(rows0, np.int64)
    both = np.intersect1d(person[rows1], person[rows0])
    to_one = set(both[rng.random(len(both)) < 0.5].tolist())
    to_zero = set(both.tolist()) - to_one
    keep1 = np.array([p not in to_zero for p in person[rows1]], bool)
    keep0 = np.array([p not in to_one for p in person[rows0]], bool)
    return rows1[keep1], rows0[keep0]


def cap_per_person(rows: np.ndarray, person: np.ndarray, most: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``most`` rows of any one person (a random subset), sorted."""
    rows = np.asarray(rows, np.int64)
    keep = []
    for p in np.unique(person[rows]):
        mine = rows[person[rows] == p]
        keep.append(rng.choice(mine, most, replace=False) if len(mine) > most else mine)
    return np.sort(np.concatenate(keep)) if keep else rows[:0]


def match_strata(keys1: np.ndarray, keys0: np.ndarray, rng: np.random.Generator,
                 max_per_class: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Positions into ``keys1`` and ``keys0`` drawn so that both sides hold the same number of items
    of every key: the smaller side's count, scaled down together (largest remainders) when the
    total exceeds ``max_per_class``.  Positions are returned sorted."""
    keys1, keys0 = np.asarray(keys1), np.asarray(keys0)
    names = sorted(set(keys1.tolist()) & set(keys0.tolist()))
    m = np.array([min(int((keys1 == k).sum()), int((keys0 == k).sum())) for k in names], np.int64)
    if max_per_class is not None and m.sum() > max_per_class:
        exact = m * (max_per_class / m.sum())
        take = np.floor(exact).astype(np.int64)
        rest = int(max_per_class - take.sum())
        take[np.argsort(-(exact - take), kind="stable")[:rest]] += 1
        m = take
    pick1, pick0 = [], []
    for k, n in zip(names, m):
        if n == 0:
            continue
        pick1.append(rng.choice(np.flatnonzero(keys1 == k), int(n), replace=False))
        pick0.append(rng.choice(np.flatnonzero(keys0 == k), int(n), replace=False))
    def cat(parts: list[np.ndarray]) -> np.ndarray:
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)

    return cat(pick1), cat(pick0)


@dataclass
class RealismSample:
    """The neutral faces to edit and the real smiles of other people, matched stratum by stratum."""

    edit_rows: np.ndarray
    real_rows: np.ndarray
    strata: dict[str, int] = field(default_factory=dict)  #: faces per stratum (the same on both sides)
    edit_keys: np.ndarray | None = None  #: stratum of each edited row (None: :func:`stratum_keys` defaults)
    real_keys: np.ndarray | None = None  #: stratum of each real row


def realism_sample(index: dict[str, np.ndarray], labels: dict[str, np.ndarray] | None, split: str = "val",
                   seed: int = 4321, max_per_class: int | None = 300, adult_age: int = 13,
                   frontal_tolerance: float | None = 0.15, size_split: int = 100, per_person: int | None = 3,
                   demographics: bool = True, broad: bool = False, smilers: bool = False) -> RealismSample:
    """Neutral rows to edit and real smiling rows of ``split``: other people, same strata, same filters,
    at most ``per_person`` photos of anyone (a few ``expressions`` people have dozens); with ``broad``
    only the broader half of the real smiles (inner-lip opening at or above their median); with
    ``smilers`` the rows to edit are real smiles too (the real ones split by person: a face that
    already smiles, edited, against other people's real smiles; unedited, this is the floor)."""
    from .dataset import neutral_rows, smiling_rows

    edit = neutral_rows(index, labels, split, adult_age=adult_age, frontal_tolerance=frontal_tolerance)
    real = smiling_rows(index, labels, split)
    keep = np.ones(len(real), bool)
    if "age" in index:
        keep &= ~((index["source"][real] == "utkface") & (index["age"][real] < adult_age))
    if frontal_tolerance is not None and "lm68" in index:
        from .landmarks68 import is_frontal

        keep &= is_frontal(index["lm68"][real], frontal_tolerance)
    real = real[keep]
    if smilers:
        edit = real.copy()
    if broad:
        from .geometry import broad_half

        real = broad_half(index["lm68"], real)
    rng = np.random.default_rng(seed)
    edit, real = assign_people(edit, real, index["person"], rng)
    if per_person:
        edit = cap_per_person(edit, index["person"], per_person, rng)
        real = cap_per_person(real, index["person"], per_person, rng)
    k1, k0 = stratum_keys(index, edit, size_split, demographics), stratum_keys(index, real, size_split, demographics)
    i1, i0 = match_strata(k1, k0, rng, max_per_class)
    names, counts = np.unique(k1[i1], return_counts=True)
    return RealismSample(edit[i1], real[i0], {str(k): int(c) for k, c in zip(names, counts)}, k1[i1], k0[i0])


# ------------------------------------------------------------------ the whole test

def evaluate_realism(edit: Editor, size: int, crops: np.ndarray, index: dict[str, np.ndarray], sample: RealismSample,
                     lams: Sequence[float] = (1.0, 2.0), folds: int = 5, repeats: int = 2, l2: float = 1.0,
                     seed: int = 0, size_split: int = 100, colour: bool = True,
                     floor_splits: int = 5, cnn: bool = False, shape: bool = True,
                     mirror: bool = True, context: bool = True, others: bool = True) -> tuple[dict[str, Any], np.ndarray]:
    """Realism AUC of the unedited neutral faces (ceiling), of their edits at each λ, and the floor.

    Returns the metrics (``ceiling``, ``per_lambda``, ``floor``: dicts with ``auc``/``sd`` for
    grey features and ``auc_colour``/``sd_colour`` with ``colour``; the ``sd`` is over the
    held-out folds, the floor's over its ``floor_splits`` random halvings of the real smiles;
    sample sizes and strata) and a sheet of lower-face windows (real smile | unedited | each λ).
    With ``cnn`` a second judge, a small CNN on the grey windows (:mod:`training.realism_cnn`), gives
    ``auc_cnn``/``sd_cnn`` on the first of the same fold assignments (one, not ``repeats``, and its
    floor over the first two halvings only: it is slow). With ``shape`` a third judge, the same
    logistic regression on the face mesh's landmarks (:mod:`training.realism_shape`), gives
    ``auc_shape``/``sd_shape``. With ``mirror`` the grey test on :func:`mirror_pooled_features`
    gives ``auc_mirror``/``sd_mirror``: the same judge, blind to which way a mouth leans. With
    ``context`` the grey test on the unedited faces and the real smiles with every face painted over
    (:func:`context_only`) gives ``context`` (``auc``, ``sd``, ``by_source``, ``window_share``: the share
    of the window left): what the test reads that no edit may change, a floor for any model on this sample.
    With ``others`` the same test on the features of :mod:`training.realism_judges` gives ``auc_gabor``,
    ``auc_pixels`` and ``auc_spectrum`` (with their ``sd_*``): judges of other kinds, which need not agree.
    """
    from .dataset import resize_crop

    person = index["person"]
    inputs = np.stack([resize_crop(np.asarray(crops[r]), size) for r in sample.edit_rows])
    reals = np.stack([resize_crop(np.asarray(crops[r]), size) for r in sample.real_rows])
    s1 = sample.edit_keys if sample.edit_keys is not None else stratum_keys(index, sample.edit_rows, size_split)
    s0 = sample.real_keys if sample.real_keys is not None else stratum_keys(index, sample.real_rows, size_split)
    p1, p0 = person[sample.edit_rows], person[sample.real_rows]
    variants: dict[str, Callable[[np.ndarray], np.ndarray]] = {"": features}
    if colour:
        variants["_colour"] = lambda x: features(x, True)
    if mirror:
        variants["_mirror"] = mirror_pooled_features
    if others:
        from .realism_judges import gabor_features, pixel_features, spectrum_features

        variants["_gabor"] = lambda x: gabor_features(lower_face(x, patch=(2 * PATCH[0], 2 * PATCH[1])) @ LUMA)
        variants["_pixels"] = lambda x: pixel_features(lower_face(x) @ LUMA)
        variants["_spectrum"] = lambda x: spectrum_features(lower_face(x) @ LUMA)
    f_real = {v: f(reals) for v, f in variants.items()}
    if cnn:
        from .realism_cnn import fit_cnn, standardise

        w_real = standardise(lower_face(reals) @ LUMA)
    if shape:
        from .realism_shape import shape_features

        g_real = shape_features(reals)

    src1, src0 = index["source"][sample.edit_rows], index["source"][sample.real_rows]

    def test(faces: np.ndarray) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for v, f in variants.items():
            r = two_sample_auc(f(faces), f_real[v], p1, p0, s1, s0, folds, repeats, l2, seed, src1, src0)
            out["auc" + v], out["sd" + v], out["by_source" + v] = r["auc"], r["sd"], r["by_group"]
        if cnn:
            r = two_sample_auc(standardise(lower_face(faces) @ LUMA), w_real, p1, p0, s1, s0, folds, 1, l2, seed,
                               src1, src0, fit=fit_cnn)
            out["auc_cnn"], out["sd_cnn"], out["by_source_cnn"] = r["auc"], r["sd"], r["by_group"]
        if shape:
            r = two_sample_auc(shape_features(faces), g_real, p1, p0, s1, s0, folds, repeats, l2, seed, src1, src0)
            out["auc_shape"], out["sd_shape"] = r["auc"], r["sd"]
        return out

    result: dict[str, Any] = {"edited": int(len(inputs)), "real": int(len(reals)), "strata": dict(sample.strata),
                              "folds": folds, "repeats": repeats, "l2": l2, "window": list(WINDOW), "patch": list(PATCH),
                              "ceiling": test(inputs), "per_lambda": {}}
    shown = [lower_face(reals[:8]), lower_face(inputs[:8])]
    for lam in lams:
        out = edit(inputs, float(lam))
        result["per_lambda"][f"{float(lam):g}"] = test(out)
        shown.append(lower_face(out[:8]))
    # floor: the real smiles split in two by person, matched by stratum like the real test, over
    # several random splits: its spread is how far a test of this size strays from 0.5 by chance
    aucs: dict[str, list[float]] = {v: [] for v in variants}
    if cnn:
        aucs["_cnn"] = []
    if shape:
        aucs["_shape"] = []
    sizes = []
    for k in range(floor_splits):
        rng = np.random.default_rng([seed, 7, k])
        people = np.unique(p0)
        half = set(people[rng.random(len(people)) < 0.5].tolist())
        a = np.array([p in half for p in p0])
        ia, ib = match_strata(s0[a], s0[~a], rng)
        fa, fb = np.flatnonzero(a)[ia], np.flatnonzero(~a)[ib]
        if len(fa) < folds:
            continue
        sizes.append(len(fa))
        for v in variants:
            r = two_sample_auc(f_real[v][fa], f_real[v][fb], p0[fa], p0[fb], s0[fa], s0[fb], folds, repeats, l2, seed + k)
            aucs[v].append(r["auc"])
        if cnn and k < 2:
            r = two_sample_auc(w_real[fa], w_real[fb], p0[fa], p0[fb], s0[fa], s0[fb], folds, 1, l2, seed + k,
                               fit=fit_cnn)
            aucs["_cnn"].append(r["auc"])
        if shape:
            r = two_sample_auc(g_real[fa], g_real[fb], p0[fa], p0[fb], s0[fa], s0[fb], folds, repeats, l2, seed + k)
            aucs["_shape"].append(r["auc"])
    floor: dict[str, Any] = {"splits": len(sizes)}
    for v in aucs:
        floor["auc" + v] = float(np.mean(aucs[v])) if aucs[v] else float("nan")
        floor["sd" + v] = float(np.std(aucs[v])) if aucs[v] else float("nan")
    result["floor"] = floor
    result["floor_size"] = int(np.mean(sizes)) if sizes else 0
    if context:
        area = context_area(np.concatenate([inputs, reals]))
        r = two_sample_auc(features(context_only(inputs, area)), features(context_only(reals, area)), p1, p0, s1, s0,
                           folds, repeats, l2, seed, src1, src0)
        x0, y0, x1, y1 = (int(round(f * size)) for f in WINDOW)
        result["context"] = {"auc": r["auc"], "sd": r["sd"], "by_source": r["by_group"],
                             "window_share": float(area[y0:y1, x0:x1].mean())}
    sheet = np.concatenate([np.concatenate(list(col), 0) for col in shown], 1) if len(inputs) else np.zeros((1, 1, 3))
    return result, np.clip(sheet + 0.5, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------ a judge with more examples

def held_out_auc(train1: np.ndarray, train0: np.ndarray, test1: np.ndarray, test0: np.ndarray, l2: float = 1.0,
                 group1: Sequence[str] | None = None, group0: Sequence[str] | None = None, bootstrap: int = 200,
                 seed: int = 0) -> dict[str, Any]:
    """ROC AUC on held-out people of a logistic regression fitted once on all of ``train1`` (class 1)
    against ``train0`` (class 0): ``auc``, ``sd`` (over ``bootstrap`` resamplings of the held-out faces,
    each side resampled on its own), ``n_train`` and ``n_test`` (per side); with ``group1``/``group0``
    also ``by_group``. The caller keeps the people of the two halves apart (different splits)."""
    if len(train1) == 0 or len(train0) == 0 or len(test1) == 0 or len(test0) == 0:
        raise ValueError("the judge needs faces on both sides of both halves")
    x = np.vstack([np.asarray(train1, np.float64), np.asarray(train0, np.float64)])
    y = np.concatenate([np.ones(len(train1)), np.zeros(len(train0))])
    model = fit_logistic(x, y, l2)
    s1, s0 = model.decision(test1), model.decision(test0)
    auc = roc_auc(np.r_[s1, s0], np.r_[np.ones(len(s1)), np.zeros(len(s0))])
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(bootstrap):
        a, b = s1[rng.integers(0, len(s1), len(s1))], s0[rng.integers(0, len(s0), len(s0))]
        boot.append(roc_auc(np.r_[a, b], np.r_[np.ones(len(a)), np.zeros(len(b))]))
    out: dict[str, Any] = {"auc": auc, "sd": float(np.std(boot)) if boot else float("nan"),
                           "n_train": int(min(len(train1), len(train0))), "n_test": int(min(len(s1), len(s0)))}
    if group1 is not None and group0 is not None:
        g1, g0 = np.asarray(group1), np.asarray(group0)
        out["by_group"] = {str(g): roc_auc(np.r_[s1[g1 == g], s0[g0 == g]], np.r_[np.ones((g1 == g).sum()), np.zeros((g0 == g).sum())])
                           for g in np.unique(np.r_[g1, g0]) if (g1 == g).any() and (g0 == g).any()}
    return out


def separation(model: Logistic, mean1: np.ndarray, mean0: np.ndarray) -> dict[str, Any]:
    """Where a judge fitted on :func:`features` (without colour) finds its tell: each feature's weight
    (on the standardised scale) times the difference of the two sides' means (``mean1`` edits,
    ``mean0`` real smiles), summed over its HOG blocks (``hog_blocks`` [rows, columns] of the window),
    over HOG's orientations (``hog_orientations``, the gradient's direction in 20° bins from 0°; 90°:
    horizontal edges), over the LBP cells (``lbp_cells``, :data:`GRID`) and in all (``hog``, ``lbp``,
    ``total``: the gap between the two sides' mean log-odds). docs/realism.md, sixteenth session."""
    n_hog = HOG_FEATURES
    n_lbp = GRID[0] * GRID[1] * LBP_BINS
    w = np.asarray(model.w, np.float64) / np.asarray(model.scale, np.float64)
    mean1, mean0 = np.asarray(mean1, np.float64), np.asarray(mean0, np.float64)
    if not w.shape == mean1.shape == mean0.shape == (n_hog + n_lbp,):
        raise ValueError(f"expected the {n_hog + n_lbp} HOG + LBP features of the grey window, "
                         f"got a judge of {w.shape} and means of {mean1.shape} and {mean0.shape}")
    c = w * (mean1 - mean0)
    hog_part = c[:n_hog].reshape(*HOG_BLOCKS, HOG_BLOCK * HOG_BLOCK, HOG_ORIENTATIONS)
    return {"total": float(c.sum()), "hog": float(hog_part.sum()), "lbp": float(c[n_hog:].sum()),
            "hog_blocks": hog_part.sum((2, 3)), "hog_orientations": hog_part.sum((0, 1, 2)),
            "lbp_cells": c[n_hog:].reshape(GRID[0] * GRID[1], LBP_BINS).sum(1).reshape(GRID)}


def trained_judge(edit: Editor, size: int, crops: np.ndarray, index: dict[str, np.ndarray],
                  labels: dict[str, np.ndarray] | None, split: str = "val", lams: Sequence[float] = (1.0, 2.0),
                  train_faces: int = 700, faces: int | None = 300, seed: int = 4321, l2: float = 1.0,
                  batch: int = 64, bands: Sequence[str] = (), context: bool = True) -> dict[str, Any]:
    """The realism test's features and classifier with far more examples to learn from: fitted once on
    the *train* split's matched sample (at most ``train_faces`` per side: its neutral faces, edited at
    λ, against real smiles of other people), scored on ``split``'s sample (the one
    :func:`evaluate_realism` uses, at most ``faces`` per side). The cross-validated test fits on four
    fifths of a few hundred faces; a judge that has seen more tells more (docs/realism.md), and the
    issue's own checks may have more. Returns ``ceiling`` (unedited) and ``per_lambda``, each as
    :func:`held_out_auc` gives it, ``train_faces`` and ``faces``; with ``bands`` (some of
    :data:`BANDS`) also ``bands``: for each, the same judge on that scale alone
    (:func:`band_features`), ``ceiling`` and ``per_lambda``; with ``context`` also ``context``: the same
    judge on the unedited faces with every face painted grey (:func:`context_only`, the area
    :func:`context_area` finds on ``split``'s sample), what no edit may change. Raises ValueError when
    either split has fewer than 10 matched faces, or when ``split`` is the train split itself."""
    from .dataset import resize_crop

    if split == "train":
        raise ValueError("the trained judge learns on the train split: score it on another (val or test)")
    halves = {"train": realism_sample(index, labels, "train", seed=seed, max_per_class=train_faces),
              split: realism_sample(index, labels, split, seed=seed, max_per_class=faces)}
    for name, s in halves.items():
        if len(s.edit_rows) < 10:
            raise ValueError(f"only {len(s.edit_rows)} matched faces on the {name} split for the trained judge")
    train, test = halves["train"], halves[split]

    scales = (None, *bands)  # each face is edited once; every scale's features come from it
    area = context_area(np.stack([resize_crop(np.asarray(crops[r]), size)
                                  for r in np.concatenate([test.edit_rows, test.real_rows])])) if context else None

    def feats(rows: np.ndarray, lam: float | None) -> dict[str | None, np.ndarray]:
        out: dict[str | None, list[np.ndarray]] = {b: [] for b in scales}
        if lam is None and area is not None:
            out["context"] = []
        for a in range(0, len(rows), batch):  # a batch at a time: the train half is large
            faces_ = np.stack([resize_crop(np.asarray(crops[r]), size) for r in rows[a : a + batch]])
            shown = faces_ if lam is None else edit(faces_, lam)
            for b in scales:
                out[b].append(band_features(shown, b))
            if "context" in out:
                out["context"].append(features(context_only(faces_, area)))
        return {b: np.concatenate(v) for b, v in out.items()}

    real_train, real_test = feats(train.real_rows, None), feats(test.real_rows, None)
    src1, src0 = index["source"][test.edit_rows], index["source"][test.real_rows]

    def judge(lam: float | None) -> dict[str | None, dict[str, Any]]:
        e_train, e_test = feats(train.edit_rows, lam), feats(test.edit_rows, lam)
        return {b: held_out_auc(e_train[b], real_train[b], e_test[b], real_test[b], l2, src1, src0, seed=seed) for b in e_train}

    got = {"ceiling": judge(None), **{f"{float(lam):g}": judge(float(lam)) for lam in lams}}
    result = {"train_faces": int(len(train.edit_rows)), "faces": int(len(test.edit_rows)), "ceiling": got["ceiling"][None],
              "per_lambda": {k: v[None] for k, v in got.items() if k != "ceiling"}}
    if area is not None:
        result["context"] = got["ceiling"]["context"]
    if bands:
        result["bands"] = {b: {"ceiling": got["ceiling"][b], "per_lambda": {k: v[b] for k, v in got.items() if k != "ceiling"}}
                           for b in bands}
    return result


def trained_judge_markdown(result: dict[str, Any]) -> str:
    """:func:`trained_judge`'s results as a Markdown table."""
    sources = sorted(result["ceiling"].get("by_group", {}))
    lines = [f"Realism, a judge with more examples: the same features and classifier fitted once on the train split "
             f"({result['train_faces']} neutral faces per side against real smiles of other people) and scored on this "
             f"split's {result['faces']} per side (± sd over 200 bootstrap resamplings of them):", "",
             "| neutral faces shown as | AUC | ± sd |" + "".join(f" {s} only |" for s in sources),
             "|---|---:|---:|" + "---:|" * len(sources)]

    def row(name: str, m: dict[str, Any]) -> str:
        by = m.get("by_group", {})
        return f"| {name} | {m['auc']:.3f} | {m['sd']:.3f} |" + "".join(f" {by[s]:.3f} |" if s in by else " – |" for s in sources)

    lines.append(row("unedited (ceiling)", result["ceiling"]))
    for lam, m in result["per_lambda"].items():
        lines.append(row(f"λ = {float(lam):+g}", m))
    names = {"fine": f"fine detail only (HOG + LBP of the grey window less its blur, σ {FINE_SIGMA:g} px)",
             "coarse": f"coarse light only (the grey window's {COARSE_GRID[0]} × {COARSE_GRID[1]} means)"}
    for band, r in result.get("bands", {}).items():
        lines.append(row(f"{names[band]}: unedited", r["ceiling"]))
        for lam, m in r["per_lambda"].items():
            lines.append(row(f"{names[band]}: λ = {float(lam):+g}", m))
    if "context" in result:
        lines.append(row("context: unedited, every face painted grey (which no edit changes)", result["context"]))
    return "\n".join(lines)
