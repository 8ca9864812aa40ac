"""On-the-fly training samples: a neutral crop, a random λ, the teacher's pair, and a real smiler.

The crops come from the prepared memmap (``training.prepare``); the teacher
(``training.teacher.Teacher``) runs inside the DataLoader worker at the
current training resolution.  Each sample is a dict of float tensors:

* ``face``     [3,s,s] the (augmented) neutral input in [-1, 1]
* ``target``   [3,s,s] the teacher's smiling target in [-1, 1]
* ``flow``     [2,s,s] the teacher's backward flow (crop px at s)
* ``mask``     [1,s,s] the teacher's mask
* ``uv``       [2,s,s] where the teacher sampled its donor patch (``Pair.uv``; 0 off the mask)
* ``strength`` [1]     λ
* ``real``     [3,s,s] a random real smiling face (for the discriminator)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from .nets import network_input
from .teacher import Teacher

#: 68-point mirror map (iBUG numbering): landmark i of a flipped face is landmark MIRROR_68[i] of the original.
MIRROR_68 = np.array(
    list(range(16, -1, -1))  # jaw 0..16
    + list(range(26, 21, -1))  # brows 17..21 <- 26..22
    + list(range(21, 16, -1))  # brows 22..26 <- 21..17
    + [27, 28, 29, 30]  # nose bridge
    + [35, 34, 33, 32, 31]  # nose bottom
    + [45, 44, 43, 42, 47, 46]  # eye 36..41 <- other eye
    + [39, 38, 37, 36, 41, 40]  # eye 42..47
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lips 48..59
    + [64, 63, 62, 61, 60, 67, 66, 65]  # inner lips 60..67
)


def resize_crop(crop: np.ndarray, size: int) -> np.ndarray:
    """An aligned crop at another size (area filter when shrinking)."""
    if crop.shape[0] == size:
        return np.ascontiguousarray(crop)
    interp = cv2.INTER_AREA if size < crop.shape[0] else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=interp)


def scale_landmarks(lm: np.ndarray, from_size: int, to_size: int) -> np.ndarray:
    """Landmarks in crop pixels of ``from_size`` -> ``to_size`` (pixel-centre convention)."""
    return ((np.asarray(lm, np.float64) + 0.5) * (to_size / from_size) - 0.5).astype(np.float32)


def flip_face(crop: np.ndarray, lm68: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror a crop left-right and its 68 landmarks (positions and identities)."""
    s = crop.shape[1]
    flipped = np.ascontiguousarray(crop[:, ::-1])
    lm = np.asarray(lm68, np.float32)[MIRROR_68].copy()
    lm[:, 0] = (s - 1) - lm[:, 0]
    return flipped, lm


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 [s,s,3] -> float [3,s,s] in [-1, 1]."""
    return network_input(np.asarray(img)[None])[0]


@dataclass
class SampleConfig:
    """What one stage of the curriculum draws."""

    size: int = 128  #: crop side s
    lam_min: float = 0.0
    lam_max: float = 1.5
    flip: bool = True
    gray_p: float = 0.15  #: probability of turning a colour input grey
    jitter: float = 0.15  #: brightness / contrast / saturation jitter amplitude
    smiler_p: float = 0.0  #: probability of editing a real smiling face instead of a neutral one


def colour_jitter(img: np.ndarray, amount: float, gray_p: float, rng: np.random.Generator) -> np.ndarray:
    """Random brightness, contrast and saturation, and sometimes grey, on a uint8 RGB crop."""
    x = img.astype(np.float32)
    if amount > 0:
        b = rng.uniform(-amount, amount) * 255 * 0.5
        c = 1.0 + rng.uniform(-amount, amount)
        sat = 1.0 + rng.uniform(-amount, amount)
        g = x @ np.array([0.299, 0.587, 0.114], np.float32)
        x = g[..., None] + (x - g[..., None]) * sat
        x = (x - x.mean()) * c + x.mean() + b
    if rng.random() < gray_p:
        g = x @ np.array([0.299, 0.587, 0.114], np.float32)
        x = np.repeat(g[..., None], 3, axis=2)
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


#: Sources left out of training inputs and of the discriminator's real set: GENKI-4K
#: crops are 64², so upscaled they would teach the discriminator that "blurry = real".
EXCLUDED_SOURCES = ("genki4k",)


def _usable(index: dict[str, np.ndarray], split: str, exclude: tuple[str, ...]) -> np.ndarray:
    return (index["split"] == split) & ~np.isin(index["source"], list(exclude))


def neutral_rows(index: dict[str, np.ndarray], labels: dict[str, np.ndarray] | None, split: str = "train",
                 adult_age: int = 13, exclude: tuple[str, ...] = EXCLUDED_SOURCES,
                 frontal_tolerance: float | None = 0.15) -> np.ndarray:
    """Rows of neutral faces of ``split`` to edit.

    With classifier labels: labelled neutrals plus confident-neutral unlabelled
    faces.  Without: labelled neutrals plus every UTKFace adult (``age >= adult_age``).
    Children under ``adult_age``, the ``exclude``d sources and (unless
    ``frontal_tolerance`` is None) faces turned further than
    :func:`training.landmarks68.is_frontal` allows are left out: the frontal
    smile direction warps a turned face's far cheek badly.
    """
    in_split = _usable(index, split, exclude)
    neutral = index["label"] == 0
    if labels is not None and "confident" in labels:
        neutral = neutral | ((index["label"] < 0) & (labels["confident"] == 0))
    elif "age" in index:
        neutral = neutral | ((index["label"] < 0) & (index["source"] == "utkface") & (index["age"] >= adult_age))
    if "age" in index:
        neutral &= ~((index["source"] == "utkface") & (index["age"] < adult_age))
    if frontal_tolerance is not None and "lm68" in index:
        from .landmarks68 import is_frontal

        neutral &= is_frontal(index["lm68"], frontal_tolerance)
    return np.flatnonzero(in_split & neutral)


def smiling_rows(index: dict[str, np.ndarray], labels: dict[str, np.ndarray] | None, split: str = "train",
                 exclude: tuple[str, ...] = EXCLUDED_SOURCES) -> np.ndarray:
    """Rows of real smiling faces of ``split`` (labelled smiles plus confident classifier smiles)."""
    in_split = _usable(index, split, exclude)
    smile = index["label"] == 1
    if labels is not None and "confident" in labels:
        smile = smile | ((index["label"] < 0) & (labels["confident"] == 1))
    return np.flatnonzero(in_split & smile)


def load_labels(cache_dir: Path) -> dict[str, np.ndarray] | None:
    """The classifier's labels (``cache_dir/labels.npz``) if they exist."""
    p = Path(cache_dir) / "labels.npz"
    if not p.exists():
        return None
    with np.load(p) as z:
        return {k: z[k] for k in z.files}


class TeacherPairs(Dataset):
    """Neutral crops with a random λ, their teacher pairs, and random real smilers.

    ``crops`` is the prepared uint8 memmap [N,256,256,3]; ``lm68`` its landmarks;
    ``rows``/``real_rows`` the neutral and smiling rows to draw from.  Any index
    maps to a random draw (use a sampler with replacement); randomness comes
    from the worker's seed, so runs differ only by seed.
    """

    def __init__(self, crops: np.ndarray, lm68: np.ndarray, rows: np.ndarray, real_rows: np.ndarray,
                 cfg: SampleConfig, teacher: Teacher, seed: int = 0):
        if len(rows) == 0:
            raise ValueError("no neutral training faces: run `python -m training prepare` (and classifier) first")
        self.crops = crops
        self.lm68 = lm68
        self.rows = np.asarray(rows)
        self.real_rows = np.asarray(real_rows) if len(real_rows) else np.asarray(rows)
        self.cfg = cfg
        self.teacher = teacher
        self.seed = seed
        self._rng: np.random.Generator | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def _generator(self) -> np.random.Generator:
        if self._rng is None:
            info = torch.utils.data.get_worker_info()
            base = info.seed if info is not None else torch.initial_seed()
            self._rng = np.random.default_rng([self.seed, base % (2 ** 32)])
        return self._rng

    def __getitem__(self, _: int) -> dict[str, torch.Tensor]:
        rng = self._generator()
        c = self.cfg
        # smiling inputs teach the student to keep teeth that are already there: the teacher only
        # pastes a donor mouth where the opening grows beyond the input's own
        pool = self.real_rows if c.smiler_p > 0 and rng.random() < c.smiler_p else self.rows
        row = int(rng.choice(pool))
        crop = np.asarray(self.crops[row])
        lm = np.asarray(self.lm68[row], np.float32)
        if c.flip and rng.random() < 0.5:
            crop, lm = flip_face(crop, lm)
        crop = colour_jitter(crop, c.jitter, c.gray_p, rng)
        src = resize_crop(crop, c.size)
        lm = scale_landmarks(lm, crop.shape[0], c.size)
        lam = float(rng.uniform(c.lam_min, c.lam_max))
        pair = self.teacher.synthesize(src, lm, lam, rng)
        real = np.asarray(self.crops[int(rng.choice(self.real_rows))])
        if rng.random() < 0.5:
            real = np.ascontiguousarray(real[:, ::-1])
        real = resize_crop(colour_jitter(real, c.jitter, c.gray_p, rng), c.size)
        return {
            "face": to_tensor(src),
            "target": to_tensor(pair.target),
            "flow": torch.from_numpy(np.ascontiguousarray(pair.flow, dtype=np.float32)),
            "mask": torch.from_numpy(np.ascontiguousarray(pair.mask, dtype=np.float32))[None],
            "uv": _uv(pair),
            "strength": torch.tensor([lam], dtype=torch.float32),
            "real": to_tensor(real),
        }


def _uv(pair) -> torch.Tensor:
    """The pair's donor-patch coordinates [2,s,s] (zeros when the teacher has none)."""
    s = pair.mask.shape[-1]
    uv = pair.uv if pair.uv is not None else np.zeros((2, s, s), np.float32)
    return torch.from_numpy(np.ascontiguousarray(uv, dtype=np.float32))


def fixed_pairs(crops: np.ndarray, lm68: np.ndarray, rows: np.ndarray, lams: tuple[float, ...], size: int,
                teacher: Teacher) -> dict[str, torch.Tensor]:
    """A deterministic batch (every row at every λ) for validation: same keys as :class:`TeacherPairs` minus ``real``."""
    out: dict[str, list] = {k: [] for k in ("face", "target", "flow", "mask", "uv", "strength")}
    for row in rows:
        src = resize_crop(np.asarray(crops[row]), size)
        lm = scale_landmarks(np.asarray(lm68[row], np.float32), crops.shape[1], size)
        for lam in lams:
            p = teacher.synthesize(src, lm, float(lam))
            out["face"].append(to_tensor(src))
            out["target"].append(to_tensor(p.target))
            out["flow"].append(torch.from_numpy(np.ascontiguousarray(p.flow, dtype=np.float32)))
            out["mask"].append(torch.from_numpy(np.ascontiguousarray(p.mask, dtype=np.float32))[None])
            out["uv"].append(_uv(p))
            out["strength"].append(torch.tensor([float(lam)]))
    return {k: torch.stack(v) for k, v in out.items()}

