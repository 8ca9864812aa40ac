"""Step 2: the smile direction in landmark space (Eq. 1).

    Δ = mean over people p of ( mean happy lm68(p) − mean neutral lm68(p) )

measured on the aligned crops (smilecore.align template, S = 256) of the
``expressions`` people in the train split.  λ = 1 is therefore, by definition,
the average real neutral→happy change; λ·Δ·(S/256) is the landmark offset at
strength λ in an S² crop.

Writes ``cache_dir/direction.npz`` and the small, committable
``training/assets/smile_direction.json``.
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from smilecore.align import CROP_SIZE, TEMPLATE_VERSION

from .config import get_logger, load_config, prepared_dir

#: The committed copy of the direction.
ASSET_PATH = Path(__file__).resolve().parent / "assets" / "smile_direction.json"


def person_deltas(lm68: np.ndarray, person: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per person with both labels: (happy mean − neutral mean) ``[P,68,2]``, neutral means, person ids."""
    deltas, neutrals, ids = [], [], []
    for p in np.unique(person):
        m = person == p
        hap, neu = m & (label == 1), m & (label == 0)
        if hap.any() and neu.any():
            deltas.append(lm68[hap].mean(0) - lm68[neu].mean(0))
            neutrals.append(lm68[neu].mean(0))
            ids.append(p)
    if not deltas:
        return np.zeros((0, 68, 2)), np.zeros((0, 68, 2)), np.array([], dtype=str)
    return np.array(deltas, np.float64), np.array(neutrals, np.float64), np.array(ids)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two flattened arrays."""
    a, b = a.ravel(), b.ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def split_half_cosines(deltas: np.ndarray, repeats: int, rng: np.random.Generator) -> np.ndarray:
    """Cosines between the mean Δ of two random disjoint halves of the people."""
    out = []
    n = len(deltas)
    for _ in range(repeats):
        perm = rng.permutation(n)
        out.append(cosine(deltas[perm[: n // 2]].mean(0), deltas[perm[n // 2 :]].mean(0)))
    return np.array(out)


def compute_direction(index: dict[str, np.ndarray], splits: tuple[str, ...] = ("train",), repeats: int = 50, seed: int = 1234) -> dict[str, Any]:
    """Δ and its statistics from the prepared index (``expressions`` faces of ``splits``), plus the
    real-smile geometry (:class:`training.geometry.RealSmile`, key ``real_smile``)."""
    from .geometry import fit_real_smile
    from .landmarks68 import moving_weights

    m = (index["source"] == "expressions") & np.isin(index["split"], splits) & (index["label"] >= 0)
    lm = index["lm68"][m].astype(np.float64)
    deltas, neutrals, ids = person_deltas(lm, index["person"][m], index["label"][m])
    if len(deltas) < 2:
        raise ValueError(f"need at least 2 people with neutral and happy photos, found {len(deltas)}")
    real_smile = fit_real_smile(deltas, neutrals, lm[index["label"][m] == 1], lm[index["label"][m] == 0], moving_weights())
    delta = deltas.mean(0)
    unit = delta.ravel() / (delta.ravel() @ delta.ravel())
    lam_people = deltas.reshape(len(deltas), -1) @ unit  # each person's change in units of λ
    cos = split_half_cosines(deltas, repeats, np.random.default_rng(seed))
    return {
        "delta": delta,
        "mean_neutral": neutrals.mean(0),
        "n_people": len(deltas),
        "split_half_cosine_mean": float(cos.mean()),
        "split_half_cosine_std": float(cos.std()),
        "person_lambda_mean": float(lam_people.mean()),
        "person_lambda_std": float(lam_people.std()),
        "mean_abs_px": float(np.linalg.norm(delta, axis=1).mean()),
        "max_abs_px": float(np.linalg.norm(delta, axis=1).max()),
        "real_smile": real_smile,
    }


def save_asset(result: dict[str, Any], path: Path = ASSET_PATH) -> None:
    """Write the committable JSON copy of the direction."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "description": "Mean neutral->happy displacement of the 68 dlib landmarks in the aligned crop "
        "(Eq. 1); strength lambda=1 is the average real change. Multiply by lambda*S/size for an S-pixel crop.",
        "template": TEMPLATE_VERSION,
        "size": CROP_SIZE,
        "n_people": int(result["n_people"]),
        "split_half_cosine": round(result["split_half_cosine_mean"], 4),
        "delta": np.round(result["delta"], 4).tolist(),
        "mean_neutral": np.round(result["mean_neutral"], 3).tolist(),
        "real_smile_description": "training.geometry.RealSmile: displacement(lambda) = s(lambda)*smile + "
        "o(lambda)*open_per_iod, calibrated so that lambda=1 reaches the median real smile and lambda=2 its "
        "90th percentile; pixels at this size",
        "real_smile": result["real_smile"].to_json(),
    }
    text = json.dumps(doc, indent=1)
    # one [x, y] pair per line keeps the file short and diff-friendly
    text = re.sub(r"\[\s+(-?[\d.e+-]+),\s+(-?[\d.e+-]+)\s+\]", r"[\1, \2]", text)
    path.write_text(text + "\n")


def load_direction(path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Δ ``[68,2]`` at S = 256 and the mean neutral shape (or ``None``), from the JSON asset or a ``direction.npz``."""
    path = Path(path) if path is not None else ASSET_PATH
    if path.suffix == ".npz":
        with np.load(path) as z:
            return z["delta"].astype(np.float64), z["mean_neutral"].astype(np.float64)
    doc = json.loads(path.read_text())
    scale = CROP_SIZE / float(doc.get("size", CROP_SIZE))
    mn = doc.get("mean_neutral")
    return np.array(doc["delta"], np.float64) * scale, (np.array(mn, np.float64) + 0.5) * scale - 0.5 if mn else None


def load_real_smile(path: str | Path | None = None):
    """The :class:`training.geometry.RealSmile` of the committed asset (crop pixels at S = 256)."""
    from .geometry import RealSmile

    path = Path(path) if path is not None else ASSET_PATH
    doc = json.loads(path.read_text())
    if "real_smile" not in doc:
        raise ValueError(f"{path} has no real_smile block: run `python -m training direction`")
    return RealSmile.from_json(doc["real_smile"], CROP_SIZE / float(doc.get("size", CROP_SIZE)))


def main(argv: list[str] | None = None) -> int:
    """``python -m training direction [--config PATH] [--no-asset]``."""
    ap = argparse.ArgumentParser(prog="python -m training direction", description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=None)
    ap.add_argument("--no-asset", action="store_true", help="do not rewrite training/assets/smile_direction.json")
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    log = get_logger("direction", cfg)
    idx_path = prepared_dir(cfg) / "index.npz"
    if not idx_path.exists():
        log.error(f"{idx_path} missing: run `python -m training prepare` first")
        return 2
    with np.load(idx_path) as z:
        index = {k: z[k] for k in ("source", "split", "label", "lm68", "person")}
    dc = cfg.direction
    try:
        res = compute_direction(index, ("train",), dc.split_half_repeats, dc.seed)
    except ValueError as exc:
        log.error(f"error: {exc} in the train split of {idx_path}")
        return 2
    log.info(
        f"train: {res['n_people']} people; split-half cosine {res['split_half_cosine_mean']:.4f} ± {res['split_half_cosine_std']:.4f}; "
        f"|Δ| mean {res['mean_abs_px']:.2f} px, max {res['max_abs_px']:.2f} px (S=256); "
        f"per-person λ {res['person_lambda_mean']:.2f} ± {res['person_lambda_std']:.2f}"
    )
    try:
        held = compute_direction(index, ("val", "test"), dc.split_half_repeats, dc.seed)
        log.info(f"held-out people ({held['n_people']}): cosine(Δ_train, Δ_heldout) = {cosine(res['delta'], held['delta']):.4f}")
        res["heldout_cosine"] = cosine(res["delta"], held["delta"])
    except ValueError as exc:
        log.info(f"held-out check skipped: {exc}")
    mag = np.linalg.norm(res["delta"], axis=1)
    top = np.argsort(-mag)[:8]
    log.info("largest moves (landmark: dx, dy px): " + ", ".join(f"{i}: {res['delta'][i, 0]:+.1f},{res['delta'][i, 1]:+.1f}" for i in top))
    rs = res["real_smile"]
    log.info(f"real-smile geometry: smile amount {rs.s1:.2f} at λ=1, {rs.s2:.2f} at λ=2; opening {rs.o1:.3f} / {rs.o2:.3f} IOD; "
             f"lips keep ≥ {rs.upper_ratio:.2f} (upper) / {rs.lower_ratio:.2f} (lower) of their thickness")
    out = cfg.cache / "direction.npz"
    np.savez(out, size=CROP_SIZE, **{k: np.asarray(v) for k, v in res.items() if k != "real_smile"})
    log.info(f"wrote {out}")
    if not args.no_asset:
        save_asset(res)
        log.info(f"wrote {ASSET_PATH}")
    return 0
