"""``python -m training smile-level``: measure what the engine's smile level is calibrated on.

The engine reads how far a face already smiles (:func:`smilecore.facemesh.smile_level`) from the
face mesh's mouth: its width and how far its corners sit above the middle of the lips, both over
the distance between the eye centres. This step measures those two on the train split's neutral
faces and real smiles (the realism test's definitions: :func:`training.dataset.neutral_rows`,
:func:`training.dataset.smiling_rows`), prints the medians and spreads to put in
:data:`smilecore.facemesh.LEVEL_NEUTRAL`, ``LEVEL_SMILE`` and ``LEVEL_SPREAD`` next to the ones the
engine carries, and how the engine's level reads on the validation split.

:func:`reading` is the same reading of a model's edits (``evaluate`` reports it per strength): how
far each edit smiles by the engine's own measure, against the strength it was asked for.
"""
from __future__ import annotations

import argparse

import numpy as np

#: An edit reads "weak" below this share of the smile it was asked for (:func:`reading`).
WEAK = 0.5


def reading(levels: np.ndarray, strength: float) -> dict[str, float]:
    """How far edits asked for ``strength`` (> 0) smile by the engine's own measure: the 10th, 50th and
    90th percentiles of the strength their face mesh ``levels`` read as
    (:func:`smilecore.strength.own_strength`; 1 = the median real smile of the train split, about 2 a
    broad one) and the share of edits that read below :data:`WEAK` times the smile asked
    (:func:`smilecore.strength.saturated`: strength 3 asks for about 2.37)."""
    from smilecore.strength import own_strength, saturated

    if strength <= 0:
        raise ValueError(f"a reading is for strengths above 0, not {strength:g}")
    own = own_strength(np.asarray(levels, np.float64).reshape(-1))
    if own.size == 0:
        raise ValueError("no edits to read")
    p10, p50, p90 = np.percentile(own, [10, 50, 90])
    return {"read_p10": float(p10), "read_median": float(p50), "read_p90": float(p90),
            "read_weak": float((own < WEAK * float(saturated(strength))).mean())}


def main(argv: list[str] | None = None) -> int:
    """Measure and print; returns 0."""
    from smilecore import facemesh as fm
    from smilecore.strength import NEUTRAL_SPREAD, own_strength

    from .config import load_config
    from .dataset import load_labels, neutral_rows, smiling_rows
    from .prepare import load_prepared

    ap = argparse.ArgumentParser(prog="python -m training smile-level", description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=None, help="config TOML (default training/config.toml)")
    ap.add_argument("--faces", type=int, default=1200, help="most faces of each kind per split (default 1200)")
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    crops, index = load_prepared(cfg)
    labels = load_labels(cfg.paths.cache_dir)
    rng = np.random.default_rng(0)
    points = {}
    for split in ("train", "val"):
        for kind, rows in (("neutral", neutral_rows(index, labels, split)), ("smile", smiling_rows(index, labels, split))):
            rows = np.sort(rng.choice(rows, min(len(rows), args.faces), replace=False))
            points[split, kind] = np.concatenate([fm.network().landmarks(np.asarray(crops[rows[a:a + 64]]))
                                                 for a in range(0, len(rows), 64)])
    neutral, smile = fm.mouth_shape(points["train", "neutral"]), fm.mouth_shape(points["train", "smile"])
    mn, ms = np.median(neutral, 0), np.median(smile, 0)
    spread = np.concatenate([neutral - mn, smile - ms]).std(0)
    print(f"train split, {len(neutral)} neutral faces and {len(smile)} real smiles (width, corner lift / eye distance):")
    print(f"  LEVEL_NEUTRAL = ({mn[0]:.4f}, {mn[1]:.4f})   engine: {fm.LEVEL_NEUTRAL}")
    print(f"  LEVEL_SMILE = ({ms[0]:.4f}, {ms[1]:.4f})   engine: {fm.LEVEL_SMILE}")
    print(f"  LEVEL_SPREAD = ({spread[0]:.4f}, {spread[1]:.4f})   engine: {fm.LEVEL_SPREAD}")
    print("validation split, the engine's level (10th / 50th / 90th percentile) and own strength:")
    for kind in ("neutral", "smile"):
        level = fm.smile_level(points["val", kind])
        own = own_strength(level)
        print(f"  {kind:8s} ({len(level)}): level {' / '.join(f'{v:.2f}' for v in np.percentile(level, [10, 50, 90]))}; "
              f"above {NEUTRAL_SPREAD} (given less than asked): {(level > NEUTRAL_SPREAD).mean():.0%}; "
              f"own strength {' / '.join(f'{v:.2f}' for v in np.percentile(own, [10, 50, 90]))}")
    return 0
