"""``python -m training <step> [--config PATH] [options]``: run one training step."""
from __future__ import annotations

import importlib
import sys
import tomllib

from .config import ConfigError

#: step name -> module whose ``main(argv) -> int`` runs it, or ``module:function`` (imported lazily)
STEPS = {
    "prepare": "training.prepare",
    "direction": "training.direction",
    "classifier": "training.classifier",
    "pairs": "training.pairs",
    "train": "training.train",
    "export": "training.export",
    "evaluate": "training.evaluate",
    "teacher-realism": "training.teacher_realism",
    "realism-regions": "training.realism_regions",
    "shade": "training.shade",
    "mouth": "training.mouth",
    "mouth-attach": "training.mouth_attach",
    "transport": "training.transport",
    "tune": "training.tune",
    "pack": "training.pack",
    "unpack": "training.pack:main_unpack",
    "bundle": "training.snapshots:main_bundle",
    "restore": "training.snapshots:main_restore",
    "smile-level": "training.smile_level",
    "strength-choice": "training.strength_choice",
    "mouth-hidden": "training.mouth_hidden",
}

USAGE = "usage: python -m training {" + "|".join(STEPS) + "} [--config PATH] [options]"


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the step's ``main``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    step, rest = argv[0], argv[1:]
    if step not in STEPS:
        print(f"error: unknown step {step!r}; choose one of: {', '.join(STEPS)}", file=sys.stderr)
        return 2
    try:
        name, _, func = STEPS[step].partition(":")
        entry = getattr(importlib.import_module(name), func or "main")
    except ImportError as exc:
        print(f"error: step {step!r} is unavailable ({exc}); install the [train] extra", file=sys.stderr)
        return 2
    try:
        return int(entry(rest) or 0)
    except FileNotFoundError as exc:
        print(f"error: {exc.filename or exc}: not found (check --config and [paths] in it)", file=sys.stderr)
        return 2
    except tomllib.TOMLDecodeError as exc:
        print(f"error: the config is not valid TOML: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
