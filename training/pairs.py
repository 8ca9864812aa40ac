"""Step 5: the teacher's donor bank, and a contact sheet of its pairs.

``python -m training pairs`` builds ``cache_dir/donors.npz`` (the open smiling mouths of the
train split that the teacher pastes, :func:`training.donors.build_donor_bank`) when it is
missing or with ``--donors``; ``--sheet N`` writes ``cache_dir/sheets/teacher.png``: N
confident-neutral train faces (classifier labels, plus ``expressions`` neutral faces when no
labels exist yet), one per row, at λ = −2 … 4 (``[pairs] size``).  Training draws its pairs on
the fly (``training.dataset``).
"""
from __future__ import annotations

import argparse

import cv2
import numpy as np

from .config import get_logger, load_config
from .dataset import load_labels, resize_crop, scale_landmarks
from .donors import build_donor_bank
from .landmarks68 import is_frontal
from .prepare import load_prepared
from .teacher import Pair, Teacher, teacher_from_config


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
    """``python -m training pairs [--config PATH] [--donors] [--sheet N]``."""
    ap = argparse.ArgumentParser(prog="python -m training pairs", description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=None)
    ap.add_argument("--donors", action="store_true", help="(re)build cache_dir/donors.npz, the teacher's open-mouth bank")
    ap.add_argument("--sheet", type=int, default=0, metavar="N", help="write a contact sheet of N faces to cache_dir/sheets/")
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    log = get_logger("pairs", cfg)
    try:
        crops, index = load_prepared(cfg)
    except FileNotFoundError as exc:
        log.error(f"{exc}: run `python -m training prepare` first")
        return 2
    labels = load_labels(cfg.cache)
    if labels is None:
        log.info("no labels.npz (run `python -m training classifier`): using expressions faces' own labels only")
    donor_path = cfg.donor_path
    if args.donors or not donor_path.exists():
        drows = donor_rows(index, labels)
        bank = build_donor_bank(crops, index["lm68"], index["gray"], drows)
        bank.save(donor_path)
        log.info(f"donor bank: {len(bank)} open smiling mouths ({int((~bank.gray).sum())} colour) of {len(drows)} smiling train faces -> {donor_path}")
    else:
        log.info(f"donor bank {donor_path} kept (--donors rebuilds it)")
    if args.sheet:
        rows = neutral_train_rows(index, labels)
        if len(rows) == 0:
            log.error("no neutral train faces found")
            return 2
        d_npz = cfg.cache / "direction.npz"
        teacher = teacher_from_config(cfg.teacher, donor_path, direction=d_npz if d_npz.exists() else None)
        sheets = cfg.cache / "sheets"
        sheets.mkdir(exist_ok=True)
        img = contact_sheet(crops, index, rows, teacher, cfg.pairs.size, n=args.sheet)
        path = sheets / "teacher.png"
        cv2.imwrite(str(path), img[:, :, ::-1])
        log.info(f"wrote {path} (columns: λ = -2 -1 0 1 2 3 4)")
    return 0
