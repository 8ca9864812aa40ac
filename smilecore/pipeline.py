"""``smile()``: photo in, photo out, every chosen face smiling."""
from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, field
from typing import Union

import numpy as np
from PIL import Image

from . import facemesh, strength as strength_rule
from .align import align_face, extract_crop
from .composite import composite_face
from .errors import InputError, NoFaceError, UsageError
from .detect import detect_faces
from .arguments import (FaceChoice, check_face_choice, check_flag, check_min_face, check_selection, check_strength,
                        pixel_limit, too_large)
from .face import Face, smaller_than_asked
from .model import ModelOutput, SmileModel
from .pixels import dim_hint, from_any, to_pil, to_rgb8
from .registry import resolve_model

#: Faces whose detection box is smaller than this (photo pixels) are reported, not edited.
MIN_EDIT_FACE = 24
#: Faces sent to the network per call (memory stays bounded however many faces a photo has).
BATCH = 4

@dataclass
class Result:
    """What :func:`smile` returns."""

    image: Union[Image.Image, np.ndarray]  #: same kind as the input
    faces: list[Face]  #: every face found, in detection order, with what was done to it
    shape: tuple[int, int] = (0, 0)  #: (H, W) of the output
    timings: dict[str, float] = field(default_factory=dict)
    strength: float = 0.0

    @property
    def mask(self) -> np.ndarray:
        """(H, W) float32 in [0,1]: how strongly each photo pixel was replaced (0 = untouched)."""
        m = np.zeros(self.shape, np.float32)
        for f in self.faces:
            if f.region is not None and f.weight is not None:
                x0, y0, x1, y1 = f.region
                np.maximum(m[y0:y1, x0:x1], f.weight, out=m[y0:y1, x0:x1])
        return m


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, mtime: float) -> SmileModel:
    return SmileModel(path)


def load_model(name_or_path: str | os.PathLike | SmileModel | None = None) -> SmileModel:
    """Load (once per process) a model: a path, a registry name, ``SMILE_MODEL``, or the bundled default
    (a model already loaded is given back as it is)."""
    if isinstance(name_or_path, SmileModel):
        return name_or_path
    if name_or_path is not None and not isinstance(name_or_path, (str, os.PathLike)):
        raise UsageError(f"model must be a path or a model name (or a loaded SmileModel), not {type(name_or_path).__name__}")
    path = resolve_model(name_or_path)
    return _load_cached(str(path.resolve()), path.stat().st_mtime)


# ---------------------------------------------------------------- arguments

def input_size(image) -> tuple[int, int] | None:
    """(W, H) of a PIL image as its header says (nothing decoded; EXIF turns keep the count) or of an
    array; None for anything else (:func:`from_any` says what is wrong with it)."""
    if isinstance(image, Image.Image):
        return image.size
    if isinstance(image, np.ndarray) and image.ndim >= 2:
        return image.shape[1], image.shape[0]
    return None


# ---------------------------------------------------------------- face choice

def _choose(faces: list[Face], choice: FaceChoice, selection: np.ndarray | None) -> list[int]:
    idx = list(range(len(faces)))
    if selection is not None:
        def inside(f: Face) -> bool:
            cx = min(selection.shape[1] - 1, (f.box[0] + f.box[2]) // 2)
            cy = min(selection.shape[0] - 1, (f.box[1] + f.box[3]) // 2)
            return bool(selection[cy, cx] > 0)

        for i in idx:
            if not inside(faces[i]):
                faces[i].reason = "outside the selection"
        idx = [i for i in idx if inside(faces[i])]
    if choice == "all":
        return idx
    if choice == "largest":
        return idx[:1]
    chosen = []
    for i in choice:  # (0-based ints: arguments.check_face_choice)
        if i >= len(faces):
            err = UsageError(f"face index {i} does not exist: {len(faces)} face(s) found (indices start at 0)")
            err.faces = faces  # (the faces there are, for a report)
            raise err
        if i in idx and i not in chosen:
            chosen.append(i)
    return chosen


# ---------------------------------------------------------------- main entry

def smile(
    image: Union[Image.Image, np.ndarray],
    strength: float = 1.0,
    faces: FaceChoice = "all",
    min_face: int | None = None,
    selection: np.ndarray | None = None,
    model: SmileModel | str | os.PathLike | None = None,
    max_pixels: int | None = None,
    debug: bool = False,
) -> Result:
    """Make the chosen faces in ``image`` smile.

    ``image``: a PIL image (any common mode; EXIF orientation is applied, ICC/EXIF kept) or a
    uint8/uint16 array (H,W) or (H,W,C).  ``strength`` λ: 0 = unchanged, 1 = an average real
    smile, 2 a broad one, up to the model's maximum (4; past 2 the smile asked for saturates, 4
    asks for about 2.4); negative = less smile.  A face that
    already smiles gets only what it lacks of that smile (:mod:`smilecore.strength`), and is left
    as it is (with a ``reason``) when it smiles that much already; so is a face turned away from the
    camera, or whose mouth something covers (:mod:`smilecore.mouth_hidden`).  ``faces``: "all", "largest"
    or 0-based indices in detection order (largest first).  ``min_face``: ignore faces whose
    box is smaller (pixels).  ``selection``: (H,W) array; only pixels where it is > 0 change,
    in proportion to its value (bool; uint8: /255, uint16: /65535, so a 0/1 mask of those is refused;
    other numbers clipped to [0,1]; NaN refused).

    Raises :class:`NoFaceError` if no face is chosen, :class:`InputError` for unusable
    images, :class:`UsageError` for bad arguments, :class:`ModelError` for model problems.
    """
    t = {}
    t0 = time.perf_counter()
    # every argument is checked before a pixel is decoded or a face looked for
    limit = pixel_limit(max_pixels)
    size = input_size(image)
    if size is not None and size[0] * size[1] > limit:
        raise too_large(size[0], size[1], limit)
    strength = check_strength(strength)
    faces = check_face_choice(faces)
    min_face = check_min_face(min_face)
    debug = check_flag(debug, "debug")
    if strength != 0.0:
        model = load_model(model)  # (a loaded SmileModel comes back as it is)
        model.check_strength(strength)
    src = from_any(image)
    photo = src.array
    h, w = photo.shape[:2]
    if h == 0 or w == 0:
        raise InputError("image is empty (0 pixels)")
    sel = None if selection is None else check_selection(selection, w, h)
    t["prepare"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    rgb8 = to_rgb8(photo)
    found = detect_faces(rgb8)
    t["detect"] = time.perf_counter() - t0
    if not found:
        raise NoFaceError(f"no face found in the photo{dim_hint(photo)}")
    for f in found:
        f.reason = "not chosen"
    chosen = _choose(found, faces, sel)
    if min_face is not None:
        for i in list(chosen):
            if found[i].size < min_face:
                found[i].reason = smaller_than_asked(min_face)
                chosen.remove(i)
    for i in list(chosen):
        if found[i].size < MIN_EDIT_FACE:
            found[i].reason = f"too small to edit ({found[i].size} px < {MIN_EDIT_FACE} px)"
            chosen.remove(i)
        elif strength_rule.facing_share(found[i].facing) == 0.0:
            found[i].reason = strength_rule.TURNED_AWAY
            chosen.remove(i)
    if not chosen:
        reasons = sorted({f.reason for f in found if f.reason})
        raise NoFaceError(f"{len(found)} face(s) found but none chosen ({'; '.join(reasons)})", faces=found)

    out_arr = photo
    if strength == 0.0:
        for i in chosen:
            found[i].reason = "strength 0"
        out_arr = photo.copy()
    else:
        t.update(align=0.0, infer=0.0, composite=0.0)
        out_arr = photo.copy()
        # a few faces per network call, composited as they come: memory does not grow with a crowd
        for start in range(0, len(chosen), BATCH):
            batch = chosen[start : start + BATCH]
            t0 = time.perf_counter()
            aligns = [align_face(found[i].landmarks, model.size) for i in batch]
            crops = np.stack([extract_crop(rgb8, al) for al in aligns])
            t["align"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            seen = facemesh.network().read(crops)
            # a face that already smiles gets only what it lacks of the smile asked for (smilecore.strength)
            lams = strength_rule.face_strengths(strength, seen.level)
            # and a face turned from the camera less of it (smilecore.strength.FACING_FULL)
            lams = lams * strength_rule.facing_share([found[i].facing for i in batch]).astype(np.float32)
            # and a face whose mouth something covers none (smilecore.mouth_hidden)
            covered = np.array([seen.mouth_covered(k, aligns[k].inverse, rgb8.shape) for k in range(len(batch))], bool)
            lams = np.where(covered, np.float32(0.0), lams)
            # the network runs only for the faces it will change (a face left as it is costs no inference)
            todo = np.flatnonzero(lams != 0.0)
            net = model.run(crops[todo], lams[todo]) if todo.size else None
            row = {int(k): j for j, k in enumerate(todo)}
            t["infer"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            for k, i in enumerate(batch):
                r = found[i]
                r.alignment = aligns[k]
                if covered[k]:
                    r.reason = strength_rule.MOUTH_HIDDEN
                    continue
                if lams[k] == 0.0:
                    r.reason = strength_rule.already_smiling(float(strength_rule.own_strength(seen.level[k])))
                    continue
                j = row[k]
                area = facemesh.edit_region(seen.outline[k], model.size, net.flow[j])
                # a face that already shows its teeth keeps them: the warp widens them, nothing is painted
                mask = facemesh.painted_mask(net.mask[j], seen.teeth[k])
                edit = composite_face(photo, aligns[k], net.rgb[j], mask, net.flow[j], out=out_arr, face_area=area,
                                      shade=None if net.shade is None else net.shade[j])
                if edit is None:
                    r.reason = "outside the photo"
                    continue
                r.region, r.weight = edit
                if sel is not None:
                    x0, y0, x1, y1 = r.region
                    s = sel[y0:y1, x0:x1]
                    own = (r.weight > 0)[..., None]  # (elsewhere in its box: another face's edit, already selected)
                    r.weight = r.weight * s
                    region = out_arr[y0:y1, x0:x1]
                    orig = photo[y0:y1, x0:x1]
                    mixed = np.rint(orig + s[..., None] * (region.astype(np.float32) - orig)).astype(photo.dtype)
                    kept = np.where(own, np.where((s > 0)[..., None], mixed, orig), region)
                    out_arr[y0:y1, x0:x1] = kept
                    if np.array_equal(np.where(own, kept, orig), orig):  # (a selection too faint to move a level)
                        r.region = r.weight = None
                        r.reason = "the selection leaves it unchanged (its values there are too small)"
                        continue
                r.edited, r.reason = True, None
                if debug:
                    r.crop = crops[k].copy()
                    r.output = ModelOutput(rgb=net.rgb[j : j + 1].copy(), mask=net.mask[j : j + 1].copy(),
                                           flow=net.flow[j : j + 1].copy(),
                                           shade=None if net.shade is None else net.shade[j : j + 1].copy())
            del net, crops
            t["composite"] += time.perf_counter() - t0
        left = [found[i].reason or "" for i in chosen]
        if not any(found[i].edited for i in chosen) and not any(r.startswith(strength_rule.ALREADY_SMILING) for r in left):
            # (faces that already smile as much are not an error; covered mouths are, as faces turned away)
            raise NoFaceError(f"{len(found)} face(s) found but none edited ({'; '.join(sorted(set(left)))})", faces=found)

    if src.kind == "pil":
        out_img: Union[Image.Image, np.ndarray] = to_pil(out_arr, src)
    else:
        out_img = out_arr[:, :, 0] if image.ndim == 2 else out_arr
    return Result(image=out_img, faces=found, shape=(h, w), timings=t, strength=strength)
