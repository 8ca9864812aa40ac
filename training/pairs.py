"""Step 5: materialise teacher pairs for reproducibility and GPU runs.

``python -m training pairs`` picks confident-neutral train faces (classifier
labels, plus ``expressions`` neutral faces when no labels exist yet), draws
λ ~ U[lam_min, lam_max] and writes ``cache_dir/pairs_<size>.npz`` (compressed):

* ``index``  int32 [P]      row in the prepared crops
* ``lam``    float32 [P]
* ``input``  uint8 [P,s,s,3] the neutral crop resized to s
* ``lm68``   float32 [P,68,2] its landmarks at s
* ``target`` uint8 [P,s,s,3]
* ``flow``   float16 [P,2,s,s] backward flow (crop px at s)
* ``mask``   uint8 [P,s,s]   mask·255

:func:`make_pair` is the one code path used both here and by on-the-fly training.
"""
from __future__ import annotations

import argparse
import time
from typing import Any

import cv2
import numpy as np

from .config import cache_dir, get_logger, load_config
from .landmarks68 import is_frontal
from .teacher import Pair, Teacher, build_donor_bank

def resize_crop(crop: np.ndarray, size: int) -> np.ndarray:
    """An aligned crop at another size (area filter when shrinking)."""
    if crop.shape[0] == size:
        return np.ascontiguousarray(crop)
    interp = cv2.INTER_AREA if size < crop.shape[0] else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=interp)

def scale_landmarks(lm: np.ndarray, from_size: int, to_size: int) -> np.ndarray:
    """Landmarks in crop pixels of ``from_size`` -> ``to_size`` (pixel-centre convention)."""
    return ((np.asarray(lm, np.float64) + 0.5) * (to_size / from_size) - 0.5).astype(np.float32)

def make_pair(teacher: Teacher, crop: np.ndarray, lm68: np.ndarray, lam: float, size: int,
              rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray, Pair]:
    """(input crop at ``size``, its landmarks, teacher pair) from a prepared crop and its landmarks."""
    src = resize_crop(crop, size)
    lm = scale_landmarks(lm68, crop.shape[0], size)
    return src, lm, teacher.synthesize(src, lm, lam, rng)

def neutral_train_rows(index: dict[str, np.ndarray], labels: dict[str, np.ndarray] | None, min_face_px: int = 64,
                       adult_age: int = 13) -> np.ndarray:
    """Rows of confident-neutral, near-frontal, sharp-enough faces of the train split (UTKFace children left out)."""
    train = index["split"] == "train"
    neutral = index["label"] == 0
    if labels is not None and "confident" in labels:
        neutral = neutral | ((index["label"] < 0) & (labels["confident"] == 0))
    usable = is_frontal(index["lm68"]) & (index["face_px"] >= min_face_px)
    if "age" in index:
        usable &= ~((index["source"] == "utkface") & (index["age"] < adult_age))
    return np.flatnonzero(train & neutral & usable)


def donor_rows(index: dict[str, np.ndarray], labels: dict[str, np.ndarray] | None, min_face_px: int = 100) -> np.ndarray:
    """Smiling train faces sharp enough to lend their mouth (labelled, or classifier-confident)."""
    smiling = index["label"] == 1
    if labels is not None and "confident" in labels:
        smiling = smiling | ((index["label"] < 0) & (labels["confident"] == 1))
    return np.flatnonzero((index["split"] == "train") & smiling & (index["face_px"] >= min_face_px) & is_frontal(index["lm68"]))


def build_pairs(crops: np.ndarray, index: dict[str, np.ndarray], rows: np.ndarray, cfg: dict[str, Any], teacher: Teacher) -> dict[str, np.ndarray]:
    """Draw faces and λ, synthesise, return the arrays of the pairs file."""
    pc = cfg.get("pairs", {})
    size = int(pc.get("size", 128))
    rng = np.random.default_rng(int(pc.get("seed", 1234)))
    n = min(int(pc.get("max_pairs", 1500)), len(rows))
    pick = np.sort(rng.choice(rows, n, replace=False))
    lam = rng.uniform(float(pc.get("lam_min", -2.0)), float(pc.get("lam_max", 4.0)), n).astype(np.float32)
    out = {
        "index": pick.astype(np.int32),
        "lam": lam,
        "input": np.zeros((n, size, size, 3), np.uint8),
        "lm68": np.zeros((n, 68, 2), np.float32),
        "target": np.zeros((n, size, size, 3), np.uint8),
        "flow": np.zeros((n, 2, size, size), np.float16),
        "mask": np.zeros((n, size, size), np.uint8),
    }
    for k, (i, lm_) in enumerate(zip(pick, lam)):
        src, lm, p = make_pair(teacher, crops[i], index["lm68"][i], float(lm_), size, rng)
        out["input"][k], out["lm68"][k], out["target"][k] = src, lm, p.target
        out["flow"][k] = p.flow.astype(np.float16)
        out["mask"][k] = np.round(p.mask * 255).astype(np.uint8)
    return out

def contact_sheet(crops: np.ndarray, index: dict[str, np.ndarray], rows: np.ndarray, teacher: Teacher, size: int,
                  lams: tuple[float, ...] = (-2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0), n: int = 6, seed: int = 0) -> np.ndarray:
    """RGB image: one face per row, one λ per column."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(rows, min(n, len(rows)), replace=False)
    lines = []
    for r, i in enumerate(pick):
        tiles = []
        for lam in lams:  # same generator state per row: the same donor across λ
            _, _, p = make_pair(teacher, crops[i], index["lm68"][i], lam, size, np.random.default_rng(seed * 1000 + r))
            tiles.append(p.target)
        lines.append(np.concatenate(tiles, 1))
    return np.concatenate(lines, 0)


def main(argv: list[str] | None = None) -> int:
    """``python -m training pairs [--config PATH] [--max-pairs N]``."""
    ap = argparse.ArgumentParser(prog="python -m training pairs", description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=None)
    ap.add_argument("--max-pairs", type=int, default=None)
    ap.add_argument("--donors", action="store_true", help="(re)build cache_dir/donors.npz, the teacher's open-mouth bank")
    ap.add_argument("--sheet", type=int, default=0, metavar="N", help="only write a contact sheet of N faces to cache_dir/sheets/")
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    log = get_logger("pairs", cfg)
    if args.max_pairs:
        cfg.setdefault("pairs", {})["max_pairs"] = args.max_pairs
    from .prepare import load_prepared

    try:
        crops, index = load_prepared(cfg)
    except FileNotFoundError as exc:
        log.error(f"{exc}: run `python -m training prepare` first")
        return 2
    lab_path = cache_dir(cfg) / "labels.npz"
    labels = dict(np.load(lab_path)) if lab_path.exists() else None
    if labels is None:
        log.info("no labels.npz (run `python -m training classifier`): using expressions neutral faces only")
    rows = neutral_train_rows(index, labels)
    if len(rows) == 0:
        log.error("no neutral train faces found")
        return 2
    donor_path = cache_dir(cfg) / "donors.npz"
    if args.donors or not donor_path.exists():
        drows = donor_rows(index, labels)
        bank = build_donor_bank(crops, index["lm68"], index["gray"], drows)
        bank.save(donor_path)
        log.info(f"donor bank: {len(bank)} open smiling mouths ({int((~bank.gray).sum())} colour) of {len(drows)} smiling train faces -> {donor_path}")
    d_npz = cache_dir(cfg) / "direction.npz"
    tcfg = cfg.get("teacher", {})
    teacher = Teacher(d_npz if d_npz.exists() else None, donors=donor_path,
                      keep_donors=tcfg.get("keep_donors"), donor_pool=tcfg.get("donor_pool"))
    if args.sheet:
        sheets = cache_dir(cfg) / "sheets"
        sheets.mkdir(exist_ok=True)
        img = contact_sheet(crops, index, rows, teacher, int(cfg.get("pairs", {}).get("size", 128)), n=args.sheet)
        path = sheets / "teacher.png"
        cv2.imwrite(str(path), img[:, :, ::-1])
        log.info(f"wrote {path} (columns: λ = -2 -1 0 1 2 3 4)")
        return 0
    t0 = time.time()
    out = build_pairs(crops, index, rows, cfg, teacher)
    size = out["input"].shape[1]
    path = cache_dir(cfg) / f"pairs_{size}.npz"
    np.savez_compressed(path, **out)
    if path.stat().st_size > 60e6:
        log.info(f"warning: {path} is over 60 MB; lower [pairs] max_pairs")
    log.info(f"{len(out['lam'])} pairs from {len(rows)} neutral train faces at {size}² in {time.time() - t0:.0f} s -> {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0
