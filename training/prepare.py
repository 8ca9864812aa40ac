"""Step 1: detect, align and cache every usable face of the training data.

Photos are decoded, faces found and their five landmarks placed by the engine, exactly as
``smile`` does (``smilecore.decode``, ``smilecore.detect.detect_faces``); dlib's 68-point
predictor adds the dense landmarks (``training.landmarks68``).

Output (in ``cache_dir/prepared/``):

* ``crops_256.npy``  uint8 ``[N, S, S, 3]`` aligned crops (smilecore.align template,
  S = ``[prepare] crop_size``); grayscale sources replicated to three channels.
* ``index.npz``      per-crop arrays: ``source`` (utkface|expressions|genki4k),
  ``file`` (path relative to data_dir), ``person``, ``label`` (1 smiling/happy,
  0 neutral, -1 unknown), ``split`` (train|val|test, by person), ``lm5`` float32
  ``[N,5,2]`` and ``lm68`` float32 ``[N,68,2]`` in crop pixels, ``gray`` (bool),
  ``face_px`` (width of the HOG-shaped box the engine fits to the face, source pixels), ``age`` (UTKFace, else -1).

Per-source partial results are kept in ``prepared/parts/`` so an interrupted run
resumes; ``--force`` redoes everything.
"""
from __future__ import annotations

import argparse
import logging
import csv
import hashlib
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from smilecore.align import Alignment, align_face, apply_affine, extract_crop
from smilecore.errors import SmileError
from smilecore.decode import load_image
from smilecore.detect import box_from5, detect_faces
from smilecore.pixels import to_rgb8

from .config import Config, get_logger, load_config, prepared_dir
from .landmarks68 import landmarks68

SOURCES = ("utkface", "expressions", "genki4k")
#: 68-point indices matching dlib's five points (eye corners, nose bottom)
LM68_OF_LM5 = np.array([45, 42, 36, 39, 33])


@dataclass(frozen=True)
class Item:
    """One source image to process."""

    source: str
    file: str  #: relative to data_dir
    person: str
    label: int
    age: int = -1


def list_items(data_dir: Path, source: str) -> list[Item]:
    """All images of one source, in a deterministic order."""
    if source == "utkface":
        items = []
        for p in sorted((data_dir / "utkface" / "images").glob("*.jpg")):
            head = p.name.split("_")[0]
            age = int(head) if head.isdigit() else -1
            items.append(Item("utkface", str(p.relative_to(data_dir)), "utk:" + p.stem, -1, age))
        return items
    if source == "expressions":
        base = data_dir / "expressions"
        items = []
        with open(base / "labels.csv", newline="") as fh:
            for row in csv.DictReader(fh):
                label = {"happiness": 1, "neutral": 0}.get(row["emotion"].strip())
                if label is None:
                    continue
                items.append(Item("expressions", f"expressions/images/{row['file']}", "expr:" + row["person"], label))
        return sorted(items, key=lambda i: i.file)
    if source == "genki4k":
        items = []
        for p in sorted((data_dir / "genki4k" / "datasets").glob("*_folder/[01]/*.jpg")):
            items.append(Item("genki4k", str(p.relative_to(data_dir)), "genki:" + p.stem, int(p.parent.name)))
        return items
    raise ValueError(f"unknown source {source!r}")


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Like ``np.savez`` but allows an array named ``file``; written atomically."""
    tmp = Path(str(path) + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for name, arr in arrays.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(arr), allow_pickle=False)
    tmp.replace(path)


def split_of(person: str, seed: int, val_fraction: float, test_fraction: float) -> str:
    """Deterministic train/val/test assignment of a person (independent of list order)."""
    h = hashlib.sha1(f"{seed}:{person}".encode()).digest()
    u = int.from_bytes(h[:8], "big") / 2.0**64
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def read_rgb(path: Path) -> tuple[np.ndarray, bool] | None:
    """Image as uint8 RGB, upright (EXIF orientation applied), plus whether it is grayscale;
    ``None`` when unreadable.  Decoded by the engine (``smilecore.decode.load_image``, no pixel
    limit) and reduced to 8-bit RGB the engine's way, as ``smile`` would see the photo."""
    try:
        image, _ = load_image(path, max_pixels=None)
    except SmileError:
        return None
    rgb = to_rgb8(np.asarray(image.convert("RGB")) if isinstance(image, Image.Image) else image)
    i = rgb.astype(np.int16)
    gray = bool(np.abs(i[..., 0] - i[..., 1]).max() <= 4 and np.abs(i[..., 1] - i[..., 2]).max() <= 4)
    return rgb, gray


def find_face(rgb: np.ndarray, size: int, min_face: int) -> tuple[Alignment, np.ndarray, np.ndarray, int] | str:
    """The subject of a face photo as the engine finds it (``smilecore.detect.detect_faces``):
    (alignment at ``size``, its 5 and 68 landmarks in crop pixels, HOG-shaped box width); else
    why not: ``"no_face"``, ``"tiny"`` (every face narrower than ``min_face``) or ``"bad_landmarks"``.

    The sources are face crops, so the face nearest the centre is tried first, and the first
    whose 68-point fit agrees with the engine's five points (eye corners, nose) wins.
    """
    found = detect_faces(rgb)
    if not found:
        return "no_face"
    centre = np.array([rgb.shape[1] - 1, rgb.shape[0] - 1]) / 2.0
    boxes = sorted(((box_from5(f.landmarks), f.landmarks) for f in found), key=lambda b: float(np.hypot(*(b[0][0] - centre))))
    if all(side < min_face for (_, side), _ in boxes):
        return "tiny"
    for (mid, side), lm5_photo in boxes:
        if side < min_face:
            continue
        al = align_face(lm5_photo, size)
        lm5 = apply_affine(al.matrix, lm5_photo)
        lm68 = apply_affine(al.matrix, landmarks68(rgb, mid, side))
        if np.linalg.norm(lm68[LM68_OF_LM5] - lm5, axis=1).mean() <= 0.06 * size:
            return al, lm5, lm68, int(round(side))
    return "bad_landmarks"


def process_source(source: str, cfg: Config, log: logging.Logger) -> None:
    """Detect/align one source into ``parts/<source>.npz`` + ``parts/<source>_crops.npy``."""
    data_dir = cfg.paths.data_dir
    size, min_face = cfg.prepare.crop_size, cfg.prepare.min_face_px
    parts = prepared_dir(cfg) / "parts"
    parts.mkdir(exist_ok=True)
    items = list_items(data_dir, source)
    crops = np.lib.format.open_memmap(parts / f"{source}_crops.tmp.npy", mode="w+", dtype=np.uint8, shape=(max(1, len(items)), size, size, 3))
    keep: list[int] = []
    lm5s, lm68s, grays, widths = [], [], [], []
    reasons = {"unreadable": 0, "no_face": 0, "tiny": 0, "bad_landmarks": 0}
    t0 = time.time()
    for k, it in enumerate(items):
        if k % 500 == 0 and k:
            rate = k / (time.time() - t0)
            log.info(f"{source}: {k}/{len(items)} kept {len(keep)} ({rate:.0f} img/s, ~{(len(items) - k) / rate / 60:.1f} min left) dropped {reasons}")
        got = read_rgb(data_dir / it.file)
        if got is None:
            reasons["unreadable"] += 1
            continue
        rgb, gray = got
        found = find_face(rgb, size, min_face)
        if isinstance(found, str):
            reasons[found] += 1
            continue
        al, lm5, lm68, width = found
        crops[len(keep)] = extract_crop(rgb, al)
        keep.append(k)
        lm5s.append(lm5)
        lm68s.append(lm68)
        grays.append(gray)
        widths.append(width)
    n = len(keep)
    crops.flush()
    out = np.lib.format.open_memmap(parts / f"{source}_crops.npy", mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
    for a in range(0, n, 1024):
        out[a : a + 1024] = crops[a : min(n, a + 1024)]
    out.flush()
    del crops, out
    (parts / f"{source}_crops.tmp.npy").unlink()
    kept = [items[k] for k in keep]
    save_npz(
        parts / f"{source}.npz",
        source=np.array([i.source for i in kept], dtype=str),
        file=np.array([i.file for i in kept], dtype=str),
        person=np.array([i.person for i in kept], dtype=str),
        label=np.array([i.label for i in kept], dtype=np.int8),
        age=np.array([i.age for i in kept], dtype=np.int16),
        lm5=np.array(lm5s, dtype=np.float32).reshape(n, 5, 2),
        lm68=np.array(lm68s, dtype=np.float32).reshape(n, 68, 2),
        gray=np.array(grays, dtype=bool),
        face_px=np.array(widths, dtype=np.int16),
    )
    log.info(f"{source}: kept {n} of {len(items)} in {(time.time() - t0) / 60:.1f} min; dropped {reasons}")


def assemble(cfg: Config, log: logging.Logger) -> None:
    """Concatenate the per-source parts into ``crops_256.npy`` + ``index.npz`` and assign splits."""
    pc = cfg.prepare
    size, seed, vf, tf = pc.crop_size, pc.seed, pc.val_fraction, pc.test_fraction
    pdir = prepared_dir(cfg)
    parts = [np.load(pdir / "parts" / f"{s}.npz") for s in SOURCES]
    fields = {k: np.concatenate([p[k] for p in parts]) for k in parts[0].files}
    n = len(fields["file"])
    fields["split"] = np.array([split_of(p, seed, vf, tf) for p in fields["person"]], dtype=str)
    out = np.lib.format.open_memmap(pdir / f"crops_{size}.tmp.npy", mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
    at = 0
    for s in SOURCES:
        c = np.load(pdir / "parts" / f"{s}_crops.npy", mmap_mode="r")
        for a in range(0, len(c), 1024):
            out[at + a : at + min(len(c), a + 1024)] = c[a : a + 1024]
        at += len(c)
    out.flush()
    del out
    (pdir / f"crops_{size}.tmp.npy").replace(pdir / f"crops_{size}.npy")
    save_npz(pdir / "index.npz", **fields)
    for s in SOURCES:
        m = fields["source"] == s
        counts = {sp: int((m & (fields["split"] == sp)).sum()) for sp in ("train", "val", "test")}
        labels = {lab: int((m & (fields["label"] == lab)).sum()) for lab in (-1, 0, 1)}
        log.info(f"{s}: {int(m.sum())} faces, splits {counts}, labels {labels}, gray {int(fields['gray'][m].sum())}")
    log.info(f"total {n} faces -> {pdir}")


def load_prepared(cfg: Config, mmap: bool = True) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The cached crops (memory-mapped) and the index arrays."""
    pdir = prepared_dir(cfg)
    size = cfg.prepare.crop_size
    crops = np.load(pdir / f"crops_{size}.npy", mmap_mode="r" if mmap else None)
    with np.load(pdir / "index.npz") as z:
        index = {k: z[k] for k in z.files}
    return crops, index


def main(argv: list[str] | None = None) -> int:
    """``python -m training prepare [--config PATH] [--force] [--sources a,b]``."""
    ap = argparse.ArgumentParser(prog="python -m training prepare", description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=None, help="config TOML (default training/config.toml)")
    ap.add_argument("--force", action="store_true", help="redo sources already cached")
    ap.add_argument("--sources", default=",".join(SOURCES), help="comma-separated subset to (re)do")
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    log = get_logger("prepare", cfg)
    data_dir = cfg.paths.data_dir
    if not data_dir.is_dir():
        log.error(f"data folder {data_dir} not found: set [paths] data_dir in the config")
        return 2
    parts = prepared_dir(cfg) / "parts"
    for s in args.sources.split(","):
        if s not in SOURCES:
            log.error(f"unknown source {s!r}; choose from {', '.join(SOURCES)}")
            return 2
        if not args.force and (parts / f"{s}.npz").exists() and (parts / f"{s}_crops.npy").exists():
            log.info(f"{s}: cached, skipping (use --force to redo)")
            continue
        process_source(s, cfg, log)
    missing = [s for s in SOURCES if not (parts / f"{s}.npz").exists()]
    if missing:
        log.info(f"not assembling yet: sources {missing} not prepared")
        return 0
    assemble(cfg, log)
    return 0
