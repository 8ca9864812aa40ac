"""``python -m training mouth-hidden``: teach the engine to see a mouth that something covers.

A hand, a face mask, a microphone, a cup or a phone in front of the mouth: the face mesh still
places the lips, and the smile network would draw lips and teeth on whatever covers them. There are
no labelled photos of covered mouths here, so this step makes them: on each face of the split it
pastes one occluder (:func:`occluder`: a hand of the face's own skin with fingers, a face mask over
the lower face, a microphone or a straw, one finger or a pen across the lips, a phone or a card, a blob or a polygon; flat colours,
textures cut from other photos, shading, soft or sharp edges, a shadow), degrades the photo as real
ones are (smaller, JPEG, grey), runs the face mesh on the result as the engine would, and fits
:mod:`smilecore.mouth_hidden`'s small network to tell those from the same faces uncovered (and
from faces with something beside the mouth, and other faces of the split as they are). The lips are the 68-point landmarks' outer lip,
counted covered where the occluder's opacity is over a half; a face is "hidden" from
:data:`HIDDEN_FROM` of its lips covered, or where the occluder crosses both lips in the mouth's middle
(:data:`CROSSING_FROM`), and "seen" up to :data:`SEEN_UP_TO` (:func:`label`).

It reports, on the validation split, how many pasted occluders it finds and how many real,
uncovered faces (every validation photo, unaltered) it would leave alone by mistake, and writes the
weights to ``smilecore/models/mouth-hidden.json`` with ``--write`` (then put the printed sha256 in
``smilecore.mouth_hidden.WEIGHTS_SHA256``).
"""
from __future__ import annotations

import argparse
import json

import cv2
import numpy as np

#: Share of the outer lip's area covered from which a mouth counts as hidden, and up to which it
#: counts as seen (the faces in between are not used).
HIDDEN_FROM = 0.3
SEEN_UP_TO = 0.1
#: A mouth also counts as hidden where, in some column of the lips' middle (:data:`MIDDLE` of the way from
#: their centre to a corner), this share of the lips is covered: one finger or a pen across both lips
#: covers a tenth or two of their area, and the smile bent it with them.  It counts as seen only where
#: no such column is covered beyond CROSSING_SEEN.
CROSSING_FROM = 0.9
CROSSING_SEEN = 0.25
MIDDLE = 0.7
#: Share of the occluders aimed at the mouth that are aimed beside its middle instead, so that they
#: cover part of the lips (a microphone at a corner, a finger across one side).
OFF_CENTRE = 0.4
#: Occluder kinds and how often each is drawn.
KINDS = {"hand": 0.22, "mask": 0.13, "bar": 0.13, "finger": 0.15, "rect": 0.13, "blob": 0.12, "poly": 0.12}
#: The bins of the share of the lips covered that the report counts occluders in.
BINS = ((0.0, 0.05), (0.05, 0.15), (0.15, 0.3), (0.3, 0.5), (0.5, 0.75), (0.75, 1.01))
#: Supersampling of the occluder's outline (anti-aliased edges).
SUPER = 4


def _lips(lm68: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Outer-lip polygon, the mouth's centre, and the eye distance, from 68 landmarks."""
    lips = lm68[48:60]
    eye = float(np.linalg.norm(lm68[36:42].mean(0) - lm68[42:48].mean(0)))
    return lips, lips.mean(0), max(eye, 4.0)


def _shape(rng: np.random.Generator, kind: str, lm68: np.ndarray, centre: np.ndarray, eye: float, size: int) -> np.ndarray:
    """The occluder's opacity (size, size) float32 0..1 of ``kind`` placed at ``centre``."""
    s = SUPER
    canvas = np.zeros((size * s, size * s), np.uint8)
    c = centre * s
    e = eye * s

    def pt(p):
        return tuple(int(round(v)) for v in p)

    if kind == "hand":
        ang = np.deg2rad(rng.uniform(-70, 70))
        d = np.array([np.sin(ang), -np.cos(ang)])  # along the fingers
        n = np.array([d[1], -d[0]])
        fingers = int(rng.integers(2, 6))
        width = rng.uniform(0.18, 0.3) * e
        length = rng.uniform(0.8, 1.6) * e
        base = c - d * length * rng.uniform(0.2, 0.6)
        for k in range(fingers):
            o = base + n * (k - (fingers - 1) / 2) * width
            tip = o + d * length * rng.uniform(0.8, 1.1)
            cv2.line(canvas, pt(o), pt(tip), 255, max(int(width * 0.88), 1), cv2.LINE_8)  # a crease between fingers
            cv2.circle(canvas, pt(tip), int(width * 0.44), 255, -1)
        if rng.random() < 0.7:  # the palm
            cv2.ellipse(canvas, pt(base - d * 0.3 * e), (int(fingers * width * 0.6), int(0.5 * e)),
                        float(np.rad2deg(ang)), 0, 360, 255, -1)
    elif kind == "mask":
        jaw = lm68[2:15] * s
        top = lm68[29] * s + np.array([0.0, rng.uniform(-0.05, 0.25) * e])
        pts = np.vstack([jaw + (jaw - jaw.mean(0)) * rng.uniform(0.0, 0.12), [jaw[-1][0], top[1]], [jaw[0][0], top[1]]])
        cv2.fillPoly(canvas, [np.rint(pts).astype(np.int32)], 255)
    elif kind == "bar":
        ang = np.deg2rad(rng.uniform(-40, 40))
        d = np.array([np.sin(ang), np.cos(ang)])
        width = rng.uniform(0.12, 0.6) * e
        start = c + rng.normal(0, 0.15, 2) * e
        cv2.line(canvas, pt(start), pt(start + d * 3 * e), 255, max(int(width), 1))
        if rng.random() < 0.6:  # a microphone's head
            cv2.circle(canvas, pt(start), int(rng.uniform(0.25, 0.5) * e), 255, -1)
    elif kind == "finger":  # one finger (or a pen, a lollipop's stick) across the lips, from below or above
        ang = np.deg2rad(rng.uniform(-35, 35))
        d = np.array([np.sin(ang), np.cos(ang)]) * (1.0 if rng.random() < 0.7 else -1.0)  # from the tip to the hand
        width = rng.uniform(0.1, 0.3) * e
        tip = c - d * rng.uniform(-0.3, 1.2) * e  # from on the lower lip to the nose
        cv2.line(canvas, pt(tip), pt(tip + d * 4 * e), 255, max(int(width), 1))
        cv2.circle(canvas, pt(tip), max(int(width / 2), 1), 255, -1)
    elif kind == "rect":
        w, h = rng.uniform(0.5, 1.6) * e, rng.uniform(0.4, 1.4) * e
        box = cv2.boxPoints(((float(c[0]), float(c[1])), (float(w), float(h)), float(rng.uniform(-45, 45))))
        cv2.fillPoly(canvas, [np.rint(box).astype(np.int32)], 255)
    elif kind == "blob":
        cv2.ellipse(canvas, pt(c), (int(rng.uniform(0.45, 1.2) * e), int(rng.uniform(0.3, 0.8) * e)),
                    float(rng.uniform(-40, 40)), 0, 360, 255, -1)
    else:  # a random polygon
        k = int(rng.integers(5, 9))
        a = np.sort(rng.uniform(0, 2 * np.pi, k))
        r = rng.uniform(0.4, 1.1, k) * e
        pts = c + np.stack([np.cos(a) * r, np.sin(a) * r], 1)
        cv2.fillPoly(canvas, [np.rint(pts).astype(np.int32)], 255)
    alpha = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    blur = rng.uniform(0.3, 2.0)
    return cv2.GaussianBlur(alpha, (0, 0), blur)


def _fill(rng: np.random.Generator, kind: str, crop: np.ndarray, lm68: np.ndarray, donors: np.ndarray, size: int) -> np.ndarray:
    """The occluder's colours (size, size, 3) float32: skin (a hand), light cloth (a mask), a flat
    colour, or a texture cut from another photo; with a gradient of light and some noise."""
    choice = rng.random()
    if kind in ("hand", "finger") and choice < 0.8:
        x0, y0 = np.rint(lm68[[1, 29]].mean(0)).astype(int)
        cheek = crop[max(y0 - 6, 0) : y0 + 6, max(x0 - 6, 0) : x0 + 6].reshape(-1, 3).mean(0)
        base = np.full((size, size, 3), cheek * rng.uniform(0.8, 1.25) * rng.uniform(0.93, 1.07, 3), np.float32)
    elif kind == "mask" and choice < 0.7:
        tone = rng.choice([[235, 235, 235], [170, 200, 230], [40, 40, 45], [200, 200, 205], [120, 150, 190]])
        base = np.full((size, size, 3), np.asarray(tone, np.float32) * rng.uniform(0.85, 1.1), np.float32)
        folds = np.sin(np.arange(size)[:, None] / size * np.pi * rng.uniform(4, 9) + rng.uniform(0, 6)) * rng.uniform(3, 14)
        base += folds[..., None].astype(np.float32)
    elif choice < 0.55:
        base = np.full((size, size, 3), rng.uniform(0, 255, 3), np.float32)
    else:
        donor = donors[int(rng.integers(len(donors)))]
        k = int(rng.integers(24, 96))
        y, x = (int(v) for v in rng.integers(0, donor.shape[0] - k, 2))
        patch = cv2.resize(np.ascontiguousarray(donor[y : y + k, x : x + k]), (size, size), interpolation=cv2.INTER_LINEAR)
        base = patch.astype(np.float32)[:, ::-1] if rng.random() < 0.5 else patch.astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    a = rng.uniform(0, 2 * np.pi)
    light = 1.0 + rng.uniform(0.0, 0.6) * (np.cos(a) * xx + np.sin(a) * yy)
    noise = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), rng.uniform(1, 8))
    base = base * light[..., None] + noise[..., None] * rng.uniform(0, 25) + rng.normal(0, rng.uniform(0, 4), base.shape)
    return base.astype(np.float32)


def crossing(covered: np.ndarray, lip_mask: np.ndarray, lips: np.ndarray) -> float:
    """The largest share of one column of the lips (``lip_mask``, its outline ``lips``) that ``covered``
    (bool, same shape) covers, over the columns of the lips' middle (:data:`MIDDLE`; columns of at least 3 lip pixels)."""
    left, right = lips[:, 0].min(), lips[:, 0].max()
    mid, half = (left + right) / 2, (right - left) / 2
    cols = np.arange(lip_mask.shape[1])
    inner = np.abs(cols - mid) <= MIDDLE * half
    n = lip_mask.sum(0)
    keep = inner & (n >= 3)
    if not keep.any():
        return 0.0
    return float(((covered & (lip_mask > 0)).sum(0)[keep] / n[keep]).max())


def label(covered: float, across: float) -> int | None:
    """1 (hidden), 0 (seen) or None (neither: not used) for an occluder covering ``covered`` of the lips
    and ``across`` of a column of their middle (:func:`crossing`)."""
    if covered >= HIDDEN_FROM or across >= CROSSING_FROM:
        return 1
    if covered <= SEEN_UP_TO and across <= CROSSING_SEEN:
        return 0
    return None


def occluder(rng: np.random.Generator, crop: np.ndarray, lm68: np.ndarray, donors: np.ndarray,
             aimed: bool = True) -> tuple[np.ndarray, float, float]:
    """``crop`` (S, S, 3) uint8 with one occluder pasted (``aimed``: near the mouth, else anywhere on the
    lower face), the share of its outer lip (68-point ``lm68``) that the occluder covers, and the largest
    share of a column of the lips' middle it covers (:func:`crossing`)."""
    size = crop.shape[0]
    lips, centre, eye = _lips(lm68)
    if aimed:
        at = centre + rng.normal(0, 0.2, 2) * eye
        if OFF_CENTRE and rng.random() < OFF_CENTRE:  # beside the middle: part of the lips
            at = centre + np.array([rng.choice([-1.0, 1.0]) * rng.uniform(0.25, 0.6), rng.uniform(-0.25, 0.25)]) * eye
    else:
        side = rng.choice([-1.0, 1.0])
        at = centre + np.array([side * rng.uniform(0.6, 1.1), rng.uniform(-0.2, 0.9)]) * eye
    kinds = list(KINDS)
    kind = str(rng.choice(kinds, p=np.array(list(KINDS.values())) / sum(KINDS.values())))
    if not aimed and kind == "mask":
        kind = "blob"
    alpha = _shape(rng, kind, lm68, at, eye * (1.0 if aimed else rng.uniform(0.4, 0.7)), size)
    fill = _fill(rng, kind, crop, lm68, donors, size)
    img = crop.astype(np.float32)
    if rng.random() < 0.3:  # its shadow on the face
        m = np.float32([[1, 0, rng.uniform(-0.15, 0.15) * eye], [0, 1, rng.uniform(0, 0.2) * eye]])
        shadow = cv2.GaussianBlur(cv2.warpAffine(alpha, m, (size, size)), (0, 0), 0.1 * eye + 1)
        img *= 1.0 - rng.uniform(0.1, 0.4) * shadow[..., None]
    out = img * (1.0 - alpha[..., None]) + fill * alpha[..., None]
    lip_mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(lip_mask, [np.rint(lips).astype(np.int32)], 1)
    over = alpha > 0.5
    covered = float(over[lip_mask > 0].mean()) if lip_mask.any() else 0.0
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), covered, crossing(over, lip_mask, lips)


def degrade(rng: np.random.Generator, crop: np.ndarray) -> np.ndarray:
    """``crop`` as a photo might give it: smaller and scaled up again, grey, JPEG-compressed (each at random)."""
    img = crop
    size = img.shape[0]
    if rng.random() < 0.5:
        k = int(size * rng.uniform(0.3, 0.9))
        img = cv2.resize(cv2.resize(img, (k, k), interpolation=cv2.INTER_AREA), (size, size), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.2:
        img = np.repeat(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    if rng.random() < 0.6:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(35, 96))])
        img = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(img)


def make_set(crops: np.ndarray, lm68: np.ndarray, rows: np.ndarray, seed: int, batch: int = 32,
             shares: list | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Features and labels (1 hidden) for ``rows`` of ``crops``: each face once uncovered, once with an
    occluder aimed at the mouth and, every other face, once with one beside it; the counts by kind.
    ``shares``, if given, gets each example's (share of the lips covered, :func:`crossing`), NaN uncovered."""
    from smilecore import facemesh
    from smilecore.mouth_hidden import features

    rng = np.random.default_rng(seed)
    mesh = facemesh.network()
    donors = crops[rng.choice(rows, size=min(len(rows), 256), replace=False)]
    xs, ys = [], []
    counts = {"seen": 0, "hidden": 0, "beside": 0, "dropped": 0}
    for a in range(0, len(rows), batch):
        imgs, labels = [], []
        for r in rows[a : a + batch]:
            crop = np.asarray(crops[r])
            imgs.append(degrade(rng, crop))
            labels.append(0)
            counts["seen"] += 1
            if shares is not None:
                shares.append((np.nan, np.nan))
            tries = [True] + ([False] if rng.random() < 0.5 else [])
            for aimed in tries:
                img, covered, across = occluder(rng, crop, lm68[r], donors, aimed)
                y = label(covered, across)
                if y is None:
                    counts["dropped"] += 1
                    continue
                labels.append(y)
                counts["hidden" if y else "beside"] += 1
                if shares is not None:
                    shares.append((covered, across))
                imgs.append(degrade(rng, img))
        stack = np.stack(imgs)
        pts = mesh.landmarks(stack)
        xs += [features(c, p) for c, p in zip(stack, pts)]
        ys += labels
    return np.stack(xs), np.asarray(ys, np.int64), counts


def real_features(crops: np.ndarray, rows: np.ndarray, batch: int = 64) -> np.ndarray:
    """Features of real, unaltered faces (the false alarms a threshold would raise)."""
    from smilecore import facemesh
    from smilecore.mouth_hidden import features

    mesh = facemesh.network()
    out = []
    for a in range(0, len(rows), batch):
        stack = np.stack([np.asarray(crops[r]) for r in rows[a : a + batch]])
        out += [features(c, p) for c, p in zip(stack, mesh.landmarks(stack))]
    return np.stack(out)


def fit_mlp(x: np.ndarray, y: np.ndarray, hidden: int = 64, epochs: int = 60, weight_decay: float = 1e-2, seed: int = 0) -> dict:
    """The weights of :class:`smilecore.mouth_hidden.HiddenMouth`: features standardised, one hidden layer of
    ``hidden`` ReLU units (dropout 0.2 while training), a logistic output; AdamW on the log-loss."""
    import torch

    torch.manual_seed(seed)
    mean = x.mean(0)
    scale = x.std(0)
    scale[scale < 1e-6] = 1.0
    xt = torch.tensor((x - mean) / scale, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.float32)
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], hidden), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(hidden, 1))
    opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(xt), generator=gen)
        for b in range(0, len(xt), 128):
            i = order[b : b + 128]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(xt[i])[:, 0], yt[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
    first, last = net[0], net[3]
    return {"mean": mean.tolist(), "scale": scale.tolist(), "w1": first.weight.detach().numpy().T.tolist(),
            "b1": first.bias.detach().numpy().tolist(), "w2": last.weight.detach().numpy()[0].tolist(),
            "b2": float(last.bias.detach().numpy()[0])}


def _rounded(weights: dict) -> dict:
    """``weights`` with every number kept to 5 significant digits (a smaller file, the same answers)."""
    def five(v):
        return [five(u) for u in v] if isinstance(v, list) else float(f"{float(v):.5g}")

    return {k: five(v) for k, v in weights.items()}


def main(argv: list[str] | None = None) -> int:
    """Build the sets, fit, report on validation, and with ``--write`` write the weights."""
    from smilecore.blazeface import MODELS_DIR
    from smilecore.digest import file_sha256

    from .config import load_config
    from .prepare import load_prepared
    from .realism import roc_auc

    ap = argparse.ArgumentParser(prog="python -m training mouth-hidden", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=None)
    ap.add_argument("--faces", type=int, default=10000, help="train faces used (default 10000)")
    ap.add_argument("--natural", type=int, default=5000,
                    help="other train faces added as they are, as mouths that show (default 5000)")
    ap.add_argument("--threshold", type=float, default=None,
                    help="probability from which a mouth counts as hidden (default smilecore.mouth_hidden.HIDDEN_AT)")
    ap.add_argument("--write", action="store_true", help="write smilecore/models/mouth-hidden.json")
    args = ap.parse_args(argv)
    from smilecore.mouth_hidden import HIDDEN_AT, HiddenMouth

    threshold = HIDDEN_AT if args.threshold is None else args.threshold
    cfg = load_config(args.config)
    crops, index = load_prepared(cfg)
    rng = np.random.default_rng(cfg.evaluate.seed)
    train = np.flatnonzero(index["split"] == "train")
    train = rng.choice(train, size=min(args.faces, len(train)), replace=False)
    val = np.flatnonzero(index["split"] == "val")
    x, y, counts = make_set(crops, index["lm68"], train, seed=1)
    others = np.setdiff1d(np.flatnonzero(index["split"] == "train"), train)
    natural = real_features(crops, rng.choice(others, size=min(args.natural, len(others)), replace=False))
    print(f"train: {len(train)} faces, {counts}, and {len(natural)} faces as they are")
    weights = _rounded(fit_mlp(np.vstack([x, natural]), np.concatenate([y, np.zeros(len(natural), np.int64)])))
    model = HiddenMouth.from_weights(weights)
    shares: list = []
    xv, yv, cv = make_set(crops, index["lm68"], val, seed=2, shares=shares)
    covered, across = np.asarray(shares).T
    thin = (yv == 1) & (covered < HIDDEN_FROM)  # hidden by crossing the lips only
    as_they_are = real_features(crops, val)
    print(f"validation: {cv}, {int(thin.sum())} of the hidden ones by crossing the lips only")
    for name, m in (("the weights in smilecore/models", HiddenMouth()), ("these weights", model)):
        pv = m.probability(xv)
        real = m.probability(as_they_are)
        alarms = int((real >= threshold).sum())
        print(f"{name}: AUC {roc_auc(pv, yv):.4f}; at {threshold:g}: {float((pv[yv == 1] >= threshold).mean()):.1%} of "
              f"pasted occluders found ({float((pv[thin] >= threshold).mean()) if thin.any() else 0.0:.1%} of those crossing "
              f"the lips only), {float((pv[yv == 0] >= threshold).mean()):.2%} of altered uncovered faces and "
              f"{alarms} of {len(val)} crops as they are ({alarms / len(val):.2%}) read as hidden")
        pasted = ~np.isnan(covered)
        cells = []
        for lo, hi in BINS:
            m = pasted & (covered >= lo) & (covered < hi)
            cells.append(f"{lo:.0%}–{min(hi, 1):.0%} {int(m.sum())}: {float((pv[m] >= threshold).mean()) if m.any() else 0.0:.1%}")
        print("  read as hidden, by the share of the lips the occluder covers (occluders):", "; ".join(cells))
    if args.write:
        out = MODELS_DIR / "mouth-hidden.json"
        about = ("smilecore.mouth_hidden: written by python -m training mouth-hidden; fitted on ../shared/data:"
                 " research / non-commercial use")
        out.write_text(json.dumps({"about": about, **weights}) + "\n")
        print(f"wrote {out} (sha256 {file_sha256(out)})")
    return 0
