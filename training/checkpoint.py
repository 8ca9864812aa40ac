"""Writing checkpoints atomically and loading generator weights into a (maybe larger) network."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file, then rename over ``path``."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_generator_state(net: torch.nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Load weights, allowing only the :class:`~training.nets.TeethAtlas` heads to be missing
    (weights from before they existed: those heads keep their fresh initialisation, exactly as
    in a from-scratch run, where they are unused until the first ``atlas`` stage).  Returns the missing keys."""
    res = net.load_state_dict(state, strict=False)
    bad = [k for k in res.missing_keys if ".atlas." not in k] + list(res.unexpected_keys)
    if bad:
        raise RuntimeError(f"checkpoint does not fit the network: {bad[:6]}")
    return list(res.missing_keys)
