"""The source photo behind each prepared crop, so that an evaluation can edit what a user edits.

``prepare`` cut every face's aligned crop out of its photo (:func:`smilecore.align.extract_crop`); the
real smiles of the realism test are those crops. The evaluation's ``engine`` composite edits the crop
itself, with the crop as the photo; ``smile`` edits the photo at the photo's own resolution, and a
JPEG it writes is compressed again with the source's own tables. :class:`SourcePhotos` finds the photo
and the alignment of a crop (by the crop's content, so every editor keeps its ``(crops, λ)`` form),
and :func:`recrop` cuts the crop again from an edited photo the way ``prepare`` cut the real smiles.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from smilecore.align import Alignment, align_face, apply_affine, extract_crop
from smilecore.decode import ImageInfo, load_image
from smilecore.detect import detect_faces
from smilecore.encode import save_image
from smilecore.pixels import Pixels, from_any, to_pil, to_rgb8

#: Splits searched for a crop, in this order (an evaluation edits validation or test faces first).
SPLITS = ("val", "test", "train")
#: How far (crop pixels, mean over the five points) a detected face's aligned points may lie from the
#: points ``prepare`` stored for the crop and still be taken for the same face.
SAME_FACE_PX = 1.0


@dataclass
class SourcePhoto:
    """One prepared face's photo as the engine reads it, and the alignment ``prepare`` cut its crop with."""

    row: int  #: the face's row in the prepared index
    pixels: Pixels  #: the photo's own pixels and mode (``smilecore.pixels.from_any`` of the decoded file)
    info: ImageInfo  #: what ``smile`` keeps when it saves the result (format, JPEG tables, ICC, EXIF)
    alignment: Alignment  #: photo -> crop, as ``prepare`` found it


def _key(crop: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(crop).tobytes(), digest_size=16).digest()


class SourcePhotos:
    """Finds the photo of a prepared crop: ``find(crop)`` gives its :class:`SourcePhoto`.

    ``crops`` and ``index`` are ``prepare``'s (:func:`training.prepare.load_prepared`), ``data_dir`` the
    folder its ``file`` paths are relative to. A crop is recognised by its exact content (the splits of
    :data:`SPLITS` are read as they are needed); its face is the one ``smilecore.detect`` finds whose
    aligned five points lie within :data:`SAME_FACE_PX` of those ``prepare`` stored, and the crop cut with
    that alignment must equal the stored crop to the byte. Raises ``ValueError`` otherwise (a crop that
    is no prepared face, a photo missing or changed since ``prepare``).
    """

    def __init__(self, crops: np.ndarray, index: dict[str, np.ndarray], data_dir: str | os.PathLike,
                 splits: Sequence[str] = SPLITS):
        self.crops, self.index, self.data_dir = crops, index, Path(data_dir)
        self._todo = [s for s in splits if s in set(index["split"].tolist())]
        self._rows: dict[bytes, int] = {}
        self._alignments: dict[int, Alignment] = {}

    def row(self, crop: np.ndarray) -> int:
        """The prepared row whose crop is ``crop``, byte for byte."""
        key = _key(crop)
        while key not in self._rows and self._todo:
            split = self._todo.pop(0)
            for r in np.flatnonzero(self.index["split"] == split):
                self._rows.setdefault(_key(self.crops[r]), int(r))
        if key not in self._rows:
            raise ValueError("a crop to edit is none of the prepared faces: the photo composites need prepare's own crops")
        return self._rows[key]

    def find(self, crop: np.ndarray) -> SourcePhoto:
        """The photo and alignment of ``crop`` (one of the prepared crops, at their size)."""
        r = self.row(crop)
        path = self.data_dir / str(self.index["file"][r])
        try:
            image, info = load_image(path, max_pixels=None)
        except Exception as exc:  # smilecore's errors name the file
            raise ValueError(f"cannot read the photo of prepared face {r}: {exc}") from None
        pixels = from_any(image)
        rgb = to_rgb8(pixels.array)
        al = self._alignments.get(r)
        if al is None:
            size = self.crops.shape[1]
            lm5 = np.asarray(self.index["lm5"][r], np.float64)
            best, err = None, np.inf
            for f in detect_faces(rgb):
                a = align_face(f.landmarks, size)
                e = float(np.linalg.norm(apply_affine(a.matrix, f.landmarks) - lm5, axis=1).mean())
                if e < err:
                    best, err = a, e
            if best is None or err > SAME_FACE_PX or not np.array_equal(extract_crop(rgb, best), np.asarray(crop)):
                raise ValueError(f"the photo {path} no longer gives prepared face {r}'s crop: run prepare again")
            al = self._alignments[r] = best
        return SourcePhoto(r, pixels, info, al)


def recrop(photo: np.ndarray, source: SourcePhoto) -> np.ndarray:
    """The crop of an edited ``photo`` (the source's own pixel layout, or uint8 RGB) cut as ``prepare`` cut the real smiles."""
    return extract_crop(to_rgb8(photo), source.alignment)


def saved(photo: np.ndarray, source: SourcePhoto) -> np.ndarray:
    """An edited ``photo`` as ``smile`` writes it (the source's format, mode and JPEG tables: see
    :func:`smilecore.encode.save_image`) and as ``prepare`` reads a photo back: uint8 RGB."""
    from .prepare import read_rgb

    suffix = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp"}.get(source.info.format or "", ".png")
    with tempfile.TemporaryDirectory(prefix="smile-saved-") as d:
        path = Path(d) / f"face{suffix}"
        save_image(path, to_pil(photo, source.pixels), source.info)
        got = read_rgb(path)
    if got is None:
        raise ValueError(f"prepared face {source.row}'s edited photo could not be read back")
    return got[0]
