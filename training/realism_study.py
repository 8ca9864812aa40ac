"""What the two realism studies (``realism-regions``, ``teacher-realism``) share: their command
line, the faces they test, the appearance they may add, and the run from the command line to
the table written into the cache."""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from .config import Config, load_config

if TYPE_CHECKING:
    from .appearance import Appearance
    from .realism import RealismSample


def study_parser(command: str, description: str, model_help: str) -> argparse.ArgumentParser:
    """The arguments both studies take: ``--config``, ``--split``, ``--model`` (``model_help``
    says what it is for) and ``--faces``; a study adds its own."""
    ap = argparse.ArgumentParser(prog=f"python -m training {command}", description=description)
    ap.add_argument("--config", default=None)
    ap.add_argument("--split", default="val", choices=("val", "test"))
    ap.add_argument("--model", default=None, help=model_help)
    ap.add_argument("--faces", type=int, default=None, help="most faces per side (default [evaluate] realism_faces)")
    ap.add_argument("--broad", action="store_true",
                    help="compare with the broader half of the real smiles only (inner-lip opening at or above their median)")
    return ap


@dataclass
class Study:
    """The faces a study tests: the configuration, the prepared crops and their index, and the
    realism sample drawn from the chosen split."""

    cfg: Config
    crops: np.ndarray
    index: dict[str, np.ndarray]
    sample: RealismSample


def load_study(args: argparse.Namespace) -> Study | None:
    """The :class:`Study` of parsed :func:`study_parser` arguments: the realism sample of
    ``args.split``, at most ``args.faces`` faces per side (default ``[evaluate] realism_faces``).
    None, after printing the reason on stderr, when the split cannot give a sample."""
    cfg = load_config(args.config)
    from .dataset import load_labels
    from .prepare import load_prepared
    from .realism import realism_sample

    crops, index = load_prepared(cfg)
    faces = int(args.faces if args.faces is not None else cfg.evaluate.realism_faces)
    try:
        sample = realism_sample(index, load_labels(cfg.paths.cache_dir), args.split, seed=cfg.evaluate.seed,
                                max_per_class=faces, broad=args.broad)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    return Study(cfg, crops, index, sample)


def train_appearance(study: Study) -> Appearance:
    """The shading learned from the train split's same-person pairs (:mod:`training.appearance`)."""
    from .appearance import fit_appearance

    index = study.index
    train = np.flatnonzero((index["source"] == "expressions") & (index["split"] == "train"))
    return fit_appearance(study.crops, index["lm68"], index["person"], index["label"], train)


def run_study(ap: argparse.ArgumentParser, argv: list[str] | None, table: str,
              body: Callable[[argparse.Namespace, Study], str]) -> int:
    """A study from start to end: parse ``argv`` with ``ap`` (a :func:`study_parser`), load the
    :class:`Study`, let ``body`` make its Markdown table and write that to ``TABLE_SPLIT.md`` in
    the cache's ``eval/`` folder.  The exit status: 0, or 2 when the split cannot give a sample."""
    args = ap.parse_args(argv)
    study = load_study(args)
    if study is None:
        return 2
    text = body(args, study)
    out = study.cfg.cache / "eval" / f"{table}_{args.split}{'_broad' if args.broad else ''}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    print(f"\nwrote {out}")
    return 0
