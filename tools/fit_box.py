"""Fit ``smilecore.detection.BOX_FIT``: the dlib-HOG-shaped box from BlazeFace's keypoints.

    python tools/fit_box.py [--n 600]

Runs dlib HOG (``detection.hog_boxes``) and BlazeFace (``detection.detect``) on training-split photos
of the training cache (``/work/cache/smile-training/prepared/index.npz``, images under
``/work/shared/data``), keeps photos where both find exactly one face, and fits by least
squares, in each face's upright frame (e = eye centre, d = eye distance, m = eye-to-mouth
distance along the face's vertical):  HOG centre = e + (a0·d + a1·m)·down,  HOG side = b0·d + b1·m
(``BOX_FIT``); then the same from dlib's five landmarks on HOG's box (``BOX_FIT5``: e = centre of
the four eye corners, m = eye centre to nose). Reports how far dlib's landmarks on the fitted
boxes are from those on HOG's box.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

INDEX = Path("/work/cache/smile-training/prepared/index.npz")
DATA = Path("/work/shared/data")


def main() -> None:
    from smilecore import detect as detection
    from smilecore.pixels import to_rgb8

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--split", default="train")
    args = ap.parse_args()
    idx = np.load(INDEX, allow_pickle=True)
    files = sorted(set(idx["file"][idx["split"] == args.split]))
    rng = np.random.default_rng(0)
    files = [files[i] for i in rng.permutation(len(files))[: args.n]]
    rows, pairs = [], []
    for f in files:
        rgb = to_rgb8(np.asarray(Image.open(DATA / f).convert("RGB")))
        hb = detection.hog_boxes(rgb)
        dets = detection.detect(rgb)
        if len(hb) != 1 or len(dets) != 1 or abs(dets[0].roll) > 10:
            continue
        (x0, y0, x1, y1), _ = hb[0]
        k = dets[0].keypoints
        e = (k[0] + k[1]) / 2
        u = k[1] - k[0]
        d = float(np.hypot(*u))
        u /= d
        down = np.array([-u[1], u[0]])
        m = float(np.dot(k[3] - e, down))
        hc = np.array([(x0 + x1 - 1) / 2 + 0.5, (y0 + y1 - 1) / 2 + 0.5])
        rows.append((d, m, float(np.dot(hc - e, down)), x1 - x0))
        pairs.append((rgb, hb[0][0], dets[0]))
    def fit(rows, name):
        r = np.array(rows)
        a, *_ = np.linalg.lstsq(r[:, :2], r[:, 2], rcond=None)
        b, *_ = np.linalg.lstsq(r[:, :2], r[:, 3], rcond=None)
        print(f"{len(r)} faces; {name} = ({a[0]:.4f}, {a[1]:.4f}, {b[0]:.4f}, {b[1]:.4f})")
        print("  residual px: centre %.2f, side %.2f (median abs)"
              % (np.median(np.abs(r[:, :2] @ a - r[:, 2])), np.median(np.abs(r[:, :2] @ b - r[:, 3]))))
        return (float(a[0]), float(a[1]), float(b[0]), float(b[1]))

    detection.BOX_FIT = fit(rows, "BOX_FIT")
    # the same from dlib's own five landmarks on HOG's box (second pass of refine_landmarks)
    rows5 = []
    for rgb, (x0, y0, x1, y1), _ in pairs:
        lm = detection.landmarks5(rgb, (x0, y0, x1 - 1, y1 - 1))
        e, d, down, m = detection.frame5(lm)
        hc = np.array([(x0 + x1 - 1) / 2 + 0.5, (y0 + y1 - 1) / 2 + 0.5])
        rows5.append((d, m, float(np.dot(hc - e, down)), x1 - x0))
    detection.BOX_FIT5 = fit(rows5, "BOX_FIT5")
    errs = []
    for rgb, (x0, y0, x1, y1), det in pairs:
        ref = detection.landmarks5(rgb, (x0, y0, x1 - 1, y1 - 1))
        new = detection.refine_landmarks(rgb, det)
        errs.append(np.abs(new - ref).max() / max(x1 - x0, 1) * 100)
    errs = np.array(errs)
    print("landmarks vs HOG box: max-coordinate difference, %% of face box: median %.2f, 95th %.2f, max %.2f"
          % (np.median(errs), np.percentile(errs, 95), errs.max()))


if __name__ == "__main__":
    main()
