"""``--debug DIR``: pictures of every step, so a person can see what the engine did.

For each photo a folder ``DIR/<n>-<name>/`` receives:

* ``faces.png``          the photo (at most 1024 px) with each face's box, index and landmarks
* ``change-mask.png``    where the photo was changed (white = fully replaced)
* ``face<i>-crop.png``   the aligned crop fed to the network, with the template points (green)
  and the detected landmarks (red)
* ``face<i>-output.png`` the edited crop: ``(1 - mask) * warp(crop, flow) + mask * rgb``, the warped
  pixels under the shade's gain for a model of contract 2
* ``face<i>-mask.png``   the network's mask (white = synthesised pixels)
* ``face<i>-flow.png``   the flow as colours (hue = direction, brightness = length;
  the longest arrow's length in crop pixels is in ``faces.json``)
* ``faces.json``         per face: box, score, landmarks, alignment matrix, edited, reason
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from smilecore.align import apply_affine, template_points
from smilecore.atomic import followed_links, write_atomic
from smilecore.contract import SHADE_OFFSET
from smilecore.errors import WriteError
from smilecore.network_io import blend, shaded
from smilecore.pixels import to_rgb8

PREVIEW_SIDE = 1024


def write_debug(folder: Path, number: int, photo_name: str, source, result, like: Path | None = None) -> Path:
    """Write the debug pictures of one photo's ``Result`` (from ``smile(..., debug=True)``); returns the folder.

    They are written as results are (:func:`smilecore.atomic.write_atomic`): whole or not at all, never
    through a link another user planted, and no more open than the photo ``like`` (a private photo's
    face crops stay private; its new folder too).  :class:`WriteError` where one cannot be written."""
    out = followed_links(Path(folder) / f"{number:03d}-{Path(photo_name).stem}")  # (never through a planted link)
    mode = 0o777
    if like is not None:
        with contextlib.suppress(OSError, ValueError):
            mode &= os.stat(like).st_mode | 0o700
    try:
        out.mkdir(mode=mode, parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(f"{out}: cannot create the folder ({exc.strerror or exc})") from None
    rgb = _rgb8(source)

    def _save(path: Path, arr: np.ndarray) -> None:
        image = Image.fromarray(np.ascontiguousarray(arr))
        write_atomic(path, lambda f: image.save(f, format="PNG"), like=like)

    _save(out / "faces.png", _faces_overview(rgb, result.faces))
    try:
        _save(out / "change-mask.png", (np.clip(result.mask, 0, 1) * 255 + 0.5).astype(np.uint8))
    except Exception:  # a result without edits may have no mask shape
        pass
    meta = []
    for f in result.faces:
        entry = {
            "index": f.index,
            "box": [int(v) for v in f.box],
            "score": float(f.score),
            "landmarks": np.asarray(f.landmarks).round(2).tolist(),
            "edited": bool(f.edited),
            "reason": f.reason,
        }
        al = getattr(f, "alignment", None)
        if al is not None:
            entry["alignment"] = np.asarray(al.matrix).round(6).tolist()
        crop = getattr(f, "crop", None)
        net = getattr(f, "output", None)
        if crop is not None and al is not None:
            _save(out / f"face{f.index}-crop.png", _crop_with_points(np.asarray(crop), al, f.landmarks))
        if crop is not None and net is not None:
            edited, mask, flow = _edited_crop(np.asarray(crop), net)
            _save(out / f"face{f.index}-output.png", edited)
            _save(out / f"face{f.index}-mask.png", (np.clip(mask, 0, 1) * 255 + 0.5).astype(np.uint8))
            _save(out / f"face{f.index}-flow.png", _flow_colours(flow))
            entry["max_flow_px"] = round(float(np.hypot(flow[0], flow[1]).max()), 3)
        meta.append(entry)
    text = json.dumps({"photo": str(photo_name), "faces": meta}, indent=2).encode("utf-8")
    write_atomic(out / "faces.json", lambda f: f.write(text), like=like)
    return out


def _rgb8(image) -> np.ndarray:
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    return to_rgb8(np.asarray(image))


def _faces_overview(rgb: np.ndarray, faces) -> np.ndarray:
    h, w = rgb.shape[:2]
    f = min(1.0, PREVIEW_SIDE / max(h, w))
    img = cv2.resize(rgb, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA) if f < 1 else rgb.copy()
    for face in faces:
        x0, y0, x1, y1 = (int(round(v * f)) for v in face.box)
        colour = (0, 200, 0) if face.edited else (200, 0, 0)
        cv2.rectangle(img, (x0, y0), (x1 - 1, y1 - 1), colour, 2)
        cv2.putText(img, str(face.index), (x0 + 3, max(12, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.6, colour, 2)
        for x, y in np.asarray(face.landmarks) * f:
            cv2.circle(img, (int(round(x)), int(round(y))), 2, (255, 255, 0), -1)
    return img


def _crop_with_points(crop: np.ndarray, alignment, landmarks) -> np.ndarray:
    img = _rgb8(crop).copy()
    for x, y in template_points(alignment.size):
        cv2.circle(img, (int(round(x)), int(round(y))), 3, (0, 255, 0), 1)
    for x, y in apply_affine(alignment.matrix, np.asarray(landmarks)):
        cv2.circle(img, (int(round(x)), int(round(y))), 2, (255, 0, 0), -1)
    return img


def _edited_crop(crop: np.ndarray, net) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply the model contract's formula to the crop (with the shade's gain under contract 2); returns (edited uint8, mask [S,S], flow [2,S,S])."""
    rgb = np.asarray(net.rgb)[0]
    mask = np.asarray(net.mask)[0, 0]
    flow = np.asarray(net.flow)[0]
    s = mask.shape[0]
    src = _rgb8(crop).astype(np.float32)
    ys, xs = np.mgrid[0:s, 0:s].astype(np.float32)
    warped = cv2.remap(src, xs + flow[0], ys + flow[1], interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if getattr(net, "shade", None) is not None:  # contract 2: the kept pixels' shading, as the engine applies it
        warped = shaded(warped, np.exp(np.asarray(net.shade, np.float32).reshape(s, s))[..., None], SHADE_OFFSET * 255)
    colour = (np.moveaxis(rgb, 0, -1) + 1.0) * 127.5
    out = blend(warped, colour, mask[..., None])
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), mask, flow


def _flow_colours(flow: np.ndarray) -> np.ndarray:
    dx, dy = flow[0].astype(np.float32), flow[1].astype(np.float32)
    mag, ang = cv2.cartToPolar(dx, dy, angleInDegrees=True)
    top = float(mag.max())
    hsv = np.zeros(dx.shape + (3,), np.uint8)
    hsv[..., 0] = (ang / 2).astype(np.uint8)
    hsv[..., 1] = 255
    hsv[..., 2] = (np.clip(mag / top, 0, 1) * 255).astype(np.uint8) if top > 0 else 0
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
