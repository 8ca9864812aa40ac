"""Synthetic benchmark photos built from the public-domain astronaut portrait in the checkout
(``samples/astronaut.jpg``, NASA), made neutral by the engine: no optional package is needed to make them."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

#: the sample portrait (512 × 512, one face)
SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "astronaut.jpg"

def scratch_folder(prefix: str) -> Path:
    """A new temporary folder for a benchmark's files, removed when the process ends."""
    import atexit
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, True)
    return folder


#: (label, width, height)
SIZES = [("0.3 MP", 640, 480), ("3 MP", 2000, 1500), ("12 MP", 4000, 3000)]


@lru_cache(maxsize=1)
def astronaut() -> np.ndarray:
    """The sample portrait as a read-only RGB uint8 array (read once)."""
    arr = np.array(Image.open(SAMPLE).convert("RGB"))
    arr.setflags(write=False)
    return arr


#: She already smiles broadly (about strength 1.7), and the engine gives a face only what it lacks
#: of the smile asked for (smilecore.strength): at the default strength it would leave her as she
#: is and time nothing. The photos of the engine's benchmarks take her smile away first, once.
NEUTRALISE = -2.0


def take_smile_away(rgb: np.ndarray) -> np.ndarray:
    """``rgb`` (uint8 RGB) with its faces' smiles taken away by the engine (:data:`NEUTRALISE`) and the
    registry's default model, whatever ``SMILE_MODEL`` names (a test's fixture model would not take the
    smile away, and the result is cached), read-only."""
    import smilecore
    from smilecore.registry import default_model_name

    model = smilecore.load_model(default_model_name())
    arr = np.array(smilecore.smile(np.array(rgb), strength=NEUTRALISE, model=model).image)
    arr.setflags(write=False)
    return arr


@lru_cache(maxsize=1)
def neutral_astronaut() -> np.ndarray:
    """The sample portrait with her smile taken away (:func:`take_smile_away`), so that every strength
    above 0 edits her: a read-only RGB uint8 array (made once)."""
    return take_smile_away(astronaut())


def make_photo(width: int, height: int, faces: int) -> np.ndarray:
    """A (height, width, 3) photo with ``faces`` neutral astronaut portraits (:func:`neutral_astronaut`)
    tiled on a textured background."""
    rng = np.random.default_rng(0)
    canvas = rng.integers(90, 170, (height, width, 3), dtype=np.uint8)
    cols = 1 if faces == 1 else 2
    rows = int(np.ceil(faces / cols))
    side = int(min(width / cols, height / rows) * 0.9)
    tile = np.asarray(Image.fromarray(neutral_astronaut()).resize((side, side), Image.LANCZOS))
    for k in range(faces):
        r, c = divmod(k, cols)
        y = int((height / rows) * r + (height / rows - side) / 2)
        x = int((width / cols) * c + (width / cols - side) / 2)
        canvas[y : y + side, x : x + side] = tile
    return canvas
