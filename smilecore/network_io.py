"""The arithmetic of the model contract (docs/model-contract.md), written once for the engine and
for training: how crops become the network's ``face`` input, and how its outputs combine.

Both functions use only arithmetic operators, so they take NumPy arrays and PyTorch tensors alike.
"""
from __future__ import annotations

from typing import TypeVar

import numpy as np

A = TypeVar("A")


def to_network_input(crops: np.ndarray) -> np.ndarray:
    """uint8 RGB crops ``[N,S,S,3]`` as the contract's ``face`` input: float32 ``[N,3,S,S]`` in [-1, 1]
    (a view may be returned: call ``np.ascontiguousarray`` where memory order matters)."""
    return np.asarray(crops).astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1.0


def shaded(warped: A, gain: A, offset: float, in_place: bool = False) -> A:
    """Contract 2: the warped pixels under the shade's gain ``exp(shade)``: ``(warped + offset)·gain − offset``,
    ``offset`` being :data:`smilecore.contract.SHADE_OFFSET` in the pixels' own scale. ``in_place``: ``warped``
    (an array or tensor of the result's shape and type) is overwritten with the result and returned."""
    if not in_place:
        return (warped + offset) * gain - offset
    warped += offset
    warped *= gain
    warped -= offset
    return warped


def blend(warped: A, rgb: A, mask: A) -> A:
    """The contract's edited crop: ``(1 − mask)·warped + mask·rgb`` (``warped``: the input resampled
    along the flow; arrays or tensors that broadcast together)."""
    return (1.0 - mask) * warped + mask * rgb
