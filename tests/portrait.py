"""The test portrait: NASA's astronaut (public domain) with her own smile taken away.

She smiles broadly in the original (about strength 1.7 by :mod:`smilecore.strength`), so at the
default strength the engine leaves her as she is: a face that already smiles gets only what it
lacks of the smile asked for. Tests that need a face to edit use her made neutral by Smile itself
(strength −2 with the bundled default model: her smile level reads about 0.15, below the 0.4 of
a smiling face); tests of a face that already smiles use the original.
"""
from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=1)
def smiling_astronaut() -> np.ndarray:
    """The original portrait, (512, 512, 3) uint8 (read-only)."""
    from skimage import data

    img = np.ascontiguousarray(data.astronaut())
    img.flags.writeable = False
    return img


@functools.lru_cache(maxsize=1)
def neutral_astronaut() -> np.ndarray:
    """The portrait with her smile taken away, (512, 512, 3) uint8 (read-only; the benchmarks' rule,
    :func:`benchmarks.photos.take_smile_away`)."""
    from benchmarks.photos import take_smile_away

    return take_smile_away(smiling_astronaut())
