"""``python -m training pack`` / ``unpack``: the faces a ``tune`` (or ``mouth``) run draws from, carried to a lent GPU.

The prepared crops (``crops_256.npy``, about 3.8 GB) do not travel to a lent machine, which takes
64 MiB of files and has neither dlib nor the data folder. A pack holds the rows a ``tune`` run
samples (:class:`training.tune.Sampler`: the train split's neutral faces to edit and the real
smiles of their strata; with ``--rows mouth`` the open mouths ``mouth`` learns from and checks
on), each as its source photo, byte for byte (no second JPEG pass that a critic could learn to
tell), with the alignment that ``prepare`` found for it and a checksum of its crop, the index and
classifier labels of those rows, and the smile classifier. ``unpack`` rebuilds a prepared cache
from a pack with the engine's own decoding and warp (``smilecore.decode``,
``smilecore.align.extract_crop``) and says how many crops came out byte-identical to the packed
ones.

The photos are the research datasets' (``../shared/data``): a pack lives in an ignored folder, is
carried to the lent machine for one run and is never committed.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from .config import Config, get_logger, load_config, prepared_dir

#: the pack's table (index rows, labels, alignments, checksums); photos lie under ``photos/``
TABLE = "pack.npz"
#: the smile classifier's file in the training cache (and in a pack)
CLASSIFIER = "classifier.pt"


def crop_digest(crop: np.ndarray) -> str:
    """A short checksum of one crop's bytes."""
    return hashlib.sha1(np.ascontiguousarray(crop).tobytes()).hexdigest()[:16]


def tune_rows(index: dict[str, np.ndarray], labels: dict[str, np.ndarray] | None, seed: int = 0) -> np.ndarray:
    """The rows :class:`training.tune.Sampler` draws from (neutral faces to edit, real smiles of
    their strata), sorted."""
    from .tune import Sampler

    s = Sampler(np.zeros((len(index["split"]), 1, 1, 3), np.uint8), index, labels, seed)
    return np.unique(np.concatenate([s.edit, *s.by_key.values()]))


def mouth_rows(crops: np.ndarray, index: dict[str, np.ndarray], cfg: Config) -> np.ndarray:
    """The rows ``python -m training mouth`` learns from and checks on (the train and val splits'
    open mouths, :func:`training.mouth.open_mouths`), sorted."""
    from .mouth import open_mouths

    mc = cfg.mouth
    return np.unique(np.concatenate([open_mouths(crops, index, split, mc.min_open, mc.min_face_px, mc.min_teeth)
                                     for split in ("train", "val")]))


def pack(cfg: Config, crops: np.ndarray, index: dict[str, np.ndarray], out: Path, rows: np.ndarray,
         max_mb: float | None = None, seed: int = 0) -> dict:
    """Write the pack of ``rows`` of ``cfg``'s prepared cache (``crops``, ``index``) to ``out`` (a new
    folder, or an earlier pack, which is replaced; any other folder is refused); at most ``max_mb``
    MiB of photos, by dropping rows at random. A row whose photo no longer gives its cached crop is
    left out (counted as dropped). Returns what it wrote."""
    from smilecore.align import extract_crop

    from .dataset import load_labels
    from .prepare import find_face, read_rgb

    if out.exists() and any(out.iterdir()) and not (out / TABLE).is_file():
        raise SystemExit(f"error: {out} is a folder with other things in it: give a new folder (or an earlier pack) to --out")
    labels = load_labels(cfg.cache)
    data = cfg.paths.data_dir
    files = index["file"].astype(str)
    rows = np.asarray(rows, np.int64)
    if max_mb is not None:
        sizes = np.array([(data / files[r]).stat().st_size for r in rows], np.int64)
        order = np.random.default_rng(seed).permutation(len(rows))  # rows in a random order, as many as fit
        rows = np.sort(rows[order[np.cumsum(sizes[order]) <= max_mb * 2**20]])
    if out.exists():
        shutil.rmtree(out)
    (out / "photos").mkdir(parents=True)
    size = crops.shape[1]
    kept, matrices, digests, lost = [], [], [], 0
    for r in rows:
        got = read_rgb(data / files[r])
        found = find_face(got[0], size, cfg.prepare.min_face_px) if got is not None else "unreadable"
        if isinstance(found, str):
            lost += 1
            continue
        al = found[0]
        crop = extract_crop(got[0], al)
        if not np.array_equal(crop, crops[r]):  # prepare chose another face or the data changed
            lost += 1
            continue
        kept.append(r)
        matrices.append(al.matrix)
        digests.append(crop_digest(crop))
        dst = out / "photos" / files[r]
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data / files[r], dst)
    kept = np.array(kept, np.int64)
    n = len(index["split"])
    table = {f"index.{k}": v[kept] for k, v in index.items() if len(v) == n}
    if labels is not None:
        table.update({f"labels.{k}": v[kept] for k, v in labels.items() if len(v) == n})
    table.update(matrix=np.array(matrices, np.float64), digest=np.array(digests), size=np.array(size))
    np.savez(out / TABLE, **table)
    if (cfg.cache / CLASSIFIER).is_file():  # the smile classifier, for runs with a rank term
        shutil.copyfile(cfg.cache / CLASSIFIER, out / CLASSIFIER)
    mb = sum(p.stat().st_size for p in (out / "photos").rglob("*") if p.is_file()) / 2**20
    return {"rows": len(kept), "dropped": lost, "photos_mb": round(mb, 1)}


def unpack(src: Path, cache: Path) -> dict:
    """Rebuild a prepared cache (``prepared/crops_S.npy``, ``prepared/index.npz``, ``labels.npz``) in
    ``cache`` from the pack at ``src``; returns how many crops matched the packed checksums."""
    from smilecore.align import Alignment, extract_crop, invert_affine

    from .prepare import read_rgb, save_npz

    with np.load(src / TABLE) as z:
        table = {k: z[k] for k in z.files}
    size = int(table["size"])
    index = {k[len("index."):]: v for k, v in table.items() if k.startswith("index.")}
    labels = {k[len("labels."):]: v for k, v in table.items() if k.startswith("labels.")}
    n = len(table["matrix"])
    pdir = cache / "prepared"
    pdir.mkdir(parents=True, exist_ok=True)
    crops = np.lib.format.open_memmap(pdir / f"crops_{size}.npy", mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
    same = 0
    for i in range(n):
        got = read_rgb(src / "photos" / str(index["file"][i]))
        if got is None:
            raise SystemExit(f"error: {src / 'photos' / str(index['file'][i])} is unreadable: the pack is damaged")
        m = table["matrix"][i]
        crops[i] = extract_crop(got[0], Alignment(m, invert_affine(m), size))
        same += crop_digest(crops[i]) == table["digest"][i]
    crops.flush()
    save_npz(pdir / "index.npz", **index)  # np.savez takes no array named "file"
    if labels:
        np.savez(cache / "labels.npz", **labels)
    if (src / CLASSIFIER).is_file():
        shutil.copyfile(src / CLASSIFIER, cache / CLASSIFIER)
    return {"rows": n, "identical": same}


def main(argv: list[str] | None = None) -> int:
    """``python -m training pack --out DIR [--rows tune|mouth] [--max-mb M] [--config PATH]``."""
    ap = argparse.ArgumentParser(prog="python -m training pack", description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=None, help="config TOML (default training/config.toml)")
    ap.add_argument("--out", required=True, help="the pack's folder: a new one, or an earlier pack to replace (keep it out of git)")
    ap.add_argument("--rows", default="tune", choices=("tune", "mouth"),
                    help="the faces of a `tune` run (default) or of `mouth` (the open mouths it learns from and checks on)")
    ap.add_argument("--max-mb", type=float, default=None, help="at most this many MiB of photos (rows dropped at random)")
    args = ap.parse_args(argv)
    from .dataset import load_labels
    from .prepare import load_prepared

    cfg = load_config(args.config)
    log = get_logger("pack", cfg)
    if not (prepared_dir(cfg) / "index.npz").exists():
        raise SystemExit("error: no prepared faces: run `python -m training prepare` (and `classifier`) first")
    crops, index = load_prepared(cfg)
    rows = tune_rows(index, load_labels(cfg.cache)) if args.rows == "tune" else mouth_rows(crops, index, cfg)
    got = pack(cfg, crops, index, Path(args.out), rows, args.max_mb)
    log.info("packed %s", got)
    print(json.dumps(got))
    return 0


def main_unpack(argv: list[str] | None = None) -> int:
    """``python -m training unpack PACK [--config PATH]``: into the training cache (``SMILE_TRAINING_CACHE``)."""
    ap = argparse.ArgumentParser(prog="python -m training unpack", description="rebuild a prepared cache from a pack")
    ap.add_argument("--config", default=None, help="config TOML (default training/config.toml)")
    ap.add_argument("pack", help="a folder written by `python -m training pack`")
    args = ap.parse_args(argv)
    src = Path(args.pack)
    if not (src / TABLE).is_file():
        raise SystemExit(f"error: {src} holds no {TABLE}: not a pack")
    cfg = load_config(args.config)
    got = unpack(src, cfg.cache)
    print(json.dumps(got))
    return 0
