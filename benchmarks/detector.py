"""Face detection: BlazeFace (the engine's detector) side by side with dlib HOG (its predecessor).

``python -m benchmarks detector`` prints, for both detectors in one run:

* time per photo (median of ``repeats``) on the benchmark photos (one face, 0.3 / 3 / 12 MP)
  and on validation portraits — detection only, and detection + landmarks;
* recall on the validation split's source photos of the training cache (see :func:`val_photos`),
  if the cache is there;
* false faces on the face-free pictures below (small and large), and faces found in the 30-face
  grid, the 108-face 12 MP grid, in tilted, small and large astronauts;
* the second pass for small faces in large photos: its cost on a 12 MP photo without a face and
  on the 108-face grid, and what it finds there.

The pictures are built here from public-domain material only (scikit-image's data, NASA's
astronaut) and are shared with tests/test_detector.py.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from smilecore.video_rotate import rotate_points

from .photos import astronaut

INDEX = Path("/work/cache/smile-training/prepared/index.npz")
DATA = Path("/work/shared/data")

#: scikit-image pictures without a human face (scenes, textures, microscopy, a cat, a horse)
SKIMAGE_FACE_FREE = [
    "binary_blobs", "brick", "cat", "cell", "checkerboard", "clock", "coffee", "coins", "colorwheel",
    "grass", "gravel", "horse", "hubble_deep_field", "immunohistochemistry", "logo", "microaneurysms",
    "moon", "page", "retina", "rocket", "shepp_logan_phantom", "stereo_motorcycle", "text",
]


def _rgb(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != np.uint8:
        x = x.astype(np.float64)
        x = (255 * (x - x.min()) / max(float(x.max() - x.min()), 1e-9)).astype(np.uint8)
    if x.ndim == 2:
        x = np.repeat(x[:, :, None], 3, axis=2)
    return np.ascontiguousarray(x[:, :, :3])


def face_free_pictures() -> dict[str, np.ndarray]:
    """≥ 30 pictures without a face: scikit-image's bundled scenes and generated textures."""
    from skimage import data

    out = {}
    for name in SKIMAGE_FACE_FREE:
        x = getattr(data, name)()
        out[name] = _rgb(x[0] if isinstance(x, tuple) else x)
    rng = np.random.default_rng(0)
    h, w = 480, 640
    out["uniform noise"] = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    out["grey noise"] = np.repeat(rng.integers(0, 256, (h, w, 1), dtype=np.uint8), 3, axis=2)
    for sigma in (3, 12, 40):
        n = cv2.GaussianBlur(rng.normal(0, 1, (h, w, 3)).astype(np.float32), (0, 0), sigma)
        out[f"smooth noise σ={sigma}"] = _rgb(n)
    yy, xx = np.mgrid[0:h, 0:w]
    out["gradient"] = _rgb(np.stack([xx, yy, xx + yy], axis=-1).astype(np.float32))
    out["stripes"] = _rgb(np.sin(xx / 7.0 + yy / 23.0))
    out["rings"] = _rgb(np.sin(np.hypot(xx - w / 2, yy - h / 2) / 5.0))
    blobs = np.zeros((h, w, 3), np.uint8)
    for _ in range(60):
        c = tuple(int(v) for v in rng.integers(0, 256, 3))
        cv2.ellipse(blobs, (int(rng.integers(0, w)), int(rng.integers(0, h))), (int(rng.integers(5, 60)), int(rng.integers(5, 60))),
                    float(rng.uniform(0, 180)), 0, 360, c, -1)
    out["random ellipses"] = blobs
    out["black"] = np.zeros((h, w, 3), np.uint8)
    return out


#: where her face is in samples/astronaut.jpg (HOG's box)
ASTRONAUT_FACE = (175, 76, 266, 167)


def grid_photo(cols: int = 6, rows: int = 5, cell: int = 260) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """A group photo: ``cols × rows`` astronauts (30 by default) on a textured background;
    returns the photo and each face's centre."""
    rng = np.random.default_rng(1)
    canvas = rng.integers(90, 170, (rows * cell, cols * cell, 3), dtype=np.uint8)
    tile = cv2.resize(astronaut(), (cell, cell), interpolation=cv2.INTER_AREA)
    f = cell / 512
    fx = (ASTRONAUT_FACE[0] + ASTRONAUT_FACE[2]) / 2 * f
    fy = (ASTRONAUT_FACE[1] + ASTRONAUT_FACE[3]) / 2 * f
    centres = []
    for r in range(rows):
        for c in range(cols):
            canvas[r * cell : (r + 1) * cell, c * cell : (c + 1) * cell] = tile
            centres.append((c * cell + fx, r * cell + fy))
    return canvas, centres


def large_group_photo(cols: int = 12, rows: int = 9, cell: int = 330) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """A large group photo (12 MP, 108 astronauts, faces ~59 px: ~1.5 % of the long side, ~9 px in
    the 640-px detection copy), which only the detector's second pass can find."""
    return grid_photo(cols, rows, cell)


def large_face_free_pictures() -> dict[str, np.ndarray]:
    """Face-free pictures large enough for the detector's second pass: the face-free scenes tiled
    at their own size, and noise of several grains, 2400–4000 px."""
    ff = face_free_pictures()
    rng = np.random.default_rng(3)
    out = {}
    for name, (w, h, scale) in {"scenes 2400×1600": (2400, 1600, 1.0), "scenes ×2, 4000×3000": (4000, 3000, 2.0)}.items():
        canvas = rng.integers(60, 200, (h, w, 3), dtype=np.uint8)
        y, k = 0, 0
        while y < h:
            x, row = 0, 0
            while x < w:
                p = ff[SKIMAGE_FACE_FREE[k % len(SKIMAGE_FACE_FREE)]]
                k += 1
                p = cv2.resize(p, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC) if scale != 1 else p
                ph, pw = min(p.shape[0], h - y), min(p.shape[1], w - x)
                canvas[y : y + ph, x : x + pw] = p[:ph, :pw]
                x, row = x + p.shape[1], max(row, p.shape[0])
            y += row
        out[name] = canvas
    out["uniform noise 4000×3000"] = rng.integers(0, 256, (3000, 4000, 3), dtype=np.uint8)
    for sigma in (2, 12):
        n = cv2.GaussianBlur(rng.normal(0, 1, (3000, 4000, 3)).astype(np.float32), (0, 0), sigma)
        out[f"smooth noise σ={sigma} 4000×3000"] = _rgb(n)
    return out


def tilted(angle: float) -> tuple[np.ndarray, tuple[float, float]]:
    """The astronaut turned by ``angle`` degrees (counter-clockwise) about her face; returns the
    picture and the face centre."""
    a = astronaut()
    c = ((ASTRONAUT_FACE[0] + ASTRONAUT_FACE[2]) / 2, (ASTRONAUT_FACE[1] + ASTRONAUT_FACE[3]) / 2)
    m = cv2.getRotationMatrix2D(c, angle, 1.0)
    return cv2.warpAffine(a, m, (a.shape[1], a.shape[0]), borderMode=cv2.BORDER_REFLECT101), c


def scaled(face_px: float, canvas: tuple[int, int] = (480, 640)) -> tuple[np.ndarray, tuple[float, float]]:
    """The astronaut scaled so her face box is ``face_px`` wide, pasted at the centre of a
    textured canvas (``face_px`` ≥ the canvas: the face fills the frame, cropped)."""
    a = astronaut()
    f = face_px / (ASTRONAUT_FACE[2] - ASTRONAUT_FACE[0])
    c = ((ASTRONAUT_FACE[0] + ASTRONAUT_FACE[2]) / 2, (ASTRONAUT_FACE[1] + ASTRONAUT_FACE[3]) / 2)
    h, w = canvas
    m = np.array([[f, 0, w / 2 - c[0] * f], [0, f, h / 2 - c[1] * f]])
    rng = np.random.default_rng(2)
    bg = rng.integers(90, 170, (h, w, 3), dtype=np.uint8)
    interp = cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR
    if f < 1:
        small = cv2.resize(a, (max(1, round(512 * f)), max(1, round(512 * f))), interpolation=cv2.INTER_AREA)
        m = np.array([[1, 0, w / 2 - c[0] * f], [0, 1, h / 2 - c[1] * f]])
        a = small
    out = cv2.warpAffine(a, m, (w, h), flags=interp, borderMode=cv2.BORDER_TRANSPARENT, dst=bg.copy())
    return out, (w / 2, h / 2)


#: Her five landmarks (dlib's 5-point model on the HOG box) in ``samples/astronaut.jpg``.
ASTRONAUT_LANDMARKS = np.array([[255, 104], [238, 104], [195, 101], [212, 103], [224, 134]], np.float64)


def pasted(background: np.ndarray, face_px: float, angle: float, at: tuple[float, float],
           contrast: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``background`` with the astronaut pasted at ``face_px`` (her HOG box), turned ``angle``° and
    centred at ``at`` (fractions of width and height); and where her landmarks are."""
    a = astronaut()
    a = np.clip((a.astype(np.float32) - 128) * contrast + 128, 0, 255).astype(np.uint8)
    img = np.ascontiguousarray(background).copy()
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((220.5, 121.5), angle, face_px / 91)
    m[:, 2] += [w * at[0] - 220.5, h * at[1] - 121.5]
    inside = cv2.warpAffine(np.full(a.shape[:2], 255, np.uint8), m, (w, h)) > 128
    img[inside] = cv2.warpAffine(a, m, (w, h), flags=cv2.INTER_AREA)[inside]
    return img, ASTRONAUT_LANDMARKS @ m[:, :2].T + m[:, 2]


def smooth_noise(h: int, w: int, seed: int = 4) -> np.ndarray:
    """A face-free background: colour noise blurred with σ = 12 px."""
    rng = np.random.default_rng(seed)
    return _rgb(cv2.GaussianBlur(rng.normal(0, 1, (h, w, 3)).astype(np.float32), (0, 0), 12))


def close_up_with_people_behind() -> tuple[np.ndarray, list[np.ndarray]]:
    """3000 × 2000: her face at 600 px (20 % of the long side) in front, four at 100–120 px behind;
    returns the photo and each face's landmarks."""
    img, first = pasted(smooth_noise(2000, 3000), 600, 0, (0.5, 0.75))
    marks = [first]
    for at, px, angle in [((0.12, 0.15), 110, 0), ((0.36, 0.12), 100, 8), ((0.62, 0.12), 120, -5), ((0.85, 0.15), 105, 0)]:
        img, m = pasted(img, px, angle, at)
        marks.append(m)
    return img, marks


def group_on_its_side(quarters: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Six faces of 80 px at low contrast in 3000 × 2000, the photo turned ``quarters`` quarter turns
    (``np.rot90``, as a photo without its EXIF orientation); returns it and each face's landmarks."""
    img, marks = smooth_noise(2000, 3000), []
    for i, angle in enumerate([0, 5, -6, 3, 0, -3]):
        img, m = pasted(img, 80, angle, (0.1 + 0.16 * i, 0.35 + 0.2 * (i % 2)), contrast=0.6)
        marks.append(m)
    return np.ascontiguousarray(np.rot90(img, quarters)), [rotate_points(m, quarters, img.shape[:2]) for m in marks]


def with_their_landmarks(faces, marks: list[np.ndarray], share: float = 0.03) -> int:
    """How many of the faces whose landmarks are ``marks`` one of ``faces`` has, each point within
    ``share`` of the eye distance."""
    return sum(any(np.abs(f.landmarks - m).max() <= share * np.linalg.norm(m[0] - m[2]) for f in faces) for m in marks)


def contains(box, point) -> bool:
    return box[0] <= point[0] < box[2] and box[1] <= point[1] < box[3]


def _hog(rgb):
    from smilecore import detect as detection

    return [b for b, _ in detection.hog_boxes(rgb)]


def _blaze(rgb):
    from smilecore import detect as detection

    return [d.box for d in detection.detect(rgb)]


DETECTORS = {"dlib HOG": _hog, "BlazeFace": _blaze}


def _time(fns: dict, rgb, repeats: int) -> dict[str, tuple[float, float]]:
    """(median, min) milliseconds of each function on ``rgb``, the functions taking turns."""
    for fn in fns.values():
        fn(rgb)
    ts = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn(rgb)
            ts[k].append((time.perf_counter() - t0) * 1000)
    return {k: (statistics.median(v), min(v)) for k, v in ts.items()}


def val_photos(limit: int | None = None) -> list[tuple[str, float]]:
    """(file, the cache's face size ``face_px``) of the validation split's source photos, one per file.

    Every photo is a single-face portrait, and the cache's landmarks are in its aligned crops,
    not in the photos: a photo counts as found when a face is found in it (the face-free
    pictures check false faces)."""
    if not INDEX.is_file():
        return []
    idx = np.load(INDEX, allow_pickle=True)
    sel = np.nonzero(idx["split"] == "val")[0]
    seen, out = set(), []
    for i in sel:
        f = str(idx["file"][i])
        if f in seen or not (DATA / f).is_file():
            continue
        seen.add(f)
        out.append((f, float(idx["face_px"][i])))
    return out[:limit] if limit else out


def _load(f: str) -> np.ndarray:
    from PIL import Image

    from smilecore.pixels import to_rgb8

    return to_rgb8(np.asarray(Image.open(DATA / f).convert("RGB")))


#: How many validation photos :func:`turned_recall` turns (every n-th of the split).
TURNED_PHOTOS = 300


def turned_recall(photos: list[tuple[str, float]]) -> dict:
    """Validation photos turned a quarter, half and three quarters of a turn (losslessly): in how
    many a face is found, and in how many its five landmarks are those of the upright photo, turned
    (within 6 % of the face's size). Photos without a face upright are left out."""
    from smilecore import detect as detection

    out = {"n": 0, **{k: [0, 0] for k in (90, 180, 270)}}
    for f, _ in photos:
        rgb = _load(f)
        up = detection.detect_faces(rgb)
        if not up:
            continue
        out["n"] += 1
        h, w = rgb.shape[:2]
        for k in (90, 180, 270):
            faces = detection.detect_faces(np.ascontiguousarray(np.rot90(rgb, k // 90)))
            if not faces:
                continue
            x, y = faces[0].landmarks[:, 0], faces[0].landmarks[:, 1]
            back = {90: np.stack([w - 1 - y, x], 1), 180: np.stack([w - 1 - x, h - 1 - y], 1),
                    270: np.stack([y, h - 1 - x], 1)}[k]
            out[k][0] += 1
            out[k][1] += bool(np.abs(back - up[0].landmarks).max() <= 0.06 * up[0].size)
    return out


def run(repeats: int = 5, val_limit: int | None = None) -> dict:
    from smilecore import detect as detection

    from .photos import SIZES, make_photo

    res: dict = {"timing": [], "checks": [], "recall": None}
    # --- timing, both detectors on the same photos, alternating
    photos = [(f"{label}, 1 face", make_photo(w, h, 1)) for label, w, h in SIZES]
    vp = val_photos()
    for f, _ in vp[:: max(1, len(vp) // 5)][:5]:
        photos.append((f"val: {Path(f).parent.parent.name}/{Path(f).name[:18]}", _load(f)))
    fns = dict(DETECTORS)
    fns["BlazeFace + landmarks"] = lambda x: detection.detect_faces(x)
    fns["no orientation check"] = lambda x: detection.detect_faces(x, upside_down=False)
    for label, rgb in photos:
        row = {"photo": label, "px": f"{rgb.shape[1]}×{rgb.shape[0]}"}
        row.update(_time(fns, rgb, repeats))
        res["timing"].append(row)
    # --- recall on the validation photos
    if vp:
        vp = vp[:val_limit] if val_limit else vp
        found = {name: 0 for name in DETECTORS}
        missed = {name: [] for name in DETECTORS}
        for f, _px in vp:
            rgb = _load(f)
            for name, fn in DETECTORS.items():
                if fn(rgb):
                    found[name] += 1
                else:
                    missed[name].append(f)
        res["recall"] = {"n": len(vp), "found": found, "missed": missed}
        res["turned"] = turned_recall(vp[:: max(1, len(vp) // TURNED_PHOTOS)])
    # --- face-free pictures, grid, tilted / small / large faces
    ff = face_free_pictures()
    for name, fn in DETECTORS.items():
        false = {k: len(fn(v)) for k, v in ff.items()}
        res["checks"].append((f"face-free pictures: pictures with a false face ({len(ff)} pictures)", name,
                              f"{sum(1 for v in false.values() if v)} ({', '.join(k for k, v in false.items() if v) or '-'})"))
    big = large_face_free_pictures()
    for name, fn in DETECTORS.items():
        false = {k: len(fn(v)) for k, v in big.items()}
        res["checks"].append((f"large face-free pictures: pictures with a false face ({len(big)} pictures)", name,
                              f"{sum(1 for v in false.values() if v)} ({', '.join(k for k, v in false.items() if v) or '-'})"))
    for what, (grid, centres) in (("30-face grid", grid_photo()), ("108-face grid, faces ~59 px", large_group_photo())):
        for name, fn in DETECTORS.items():
            boxes = fn(grid)
            n = sum(any(contains(b, c) for b in boxes) for c in centres)
            res["checks"].append((f"{what} {grid.shape[1]}×{grid.shape[0]}: faces found (false)", name,
                                  f"{n} ({sum(1 for b in boxes if not any(contains(b, c) for c in centres))})"))
    for label, cases in [
        ("tilted −60…60° (every 15°)", [tilted(a) for a in range(-60, 61, 15)]),
        ("small faces 20, 24, 32, 40, 48 px (640×480)", [scaled(s) for s in (20, 24, 32, 40, 48)]),
        ("large faces 300, 480, 640 px (640×480)", [scaled(s) for s in (300, 480, 640)]),
    ]:
        for name, fn in DETECTORS.items():
            n = sum(any(contains(b, c) for b in fn(img)) for img, c in cases)
            res["checks"].append((label, name, f"{n} / {len(cases)}"))
    # --- harder group photos: people behind a close-up, a group lying on its side
    res["groups"] = []
    for label, (img, marks) in (("close-up (600 px) with four people behind (100–120 px), 3000 × 2000", close_up_with_people_behind()),
                                ("six faces of 80 px at low contrast, the photo turned 90°", group_on_its_side(1)),
                                ("… turned 270°", group_on_its_side(3))):
        row = {"photo": label, "faces": len(marks), "right": with_their_landmarks(detection.detect_faces(img), marks)}
        row.update(_time({"detect_faces": detection.detect_faces}, img, repeats))
        res["groups"].append(row)
    # --- the second pass (small faces of large photos): its cost and what it finds
    res["fine"] = []
    rng = np.random.default_rng(4)
    for label, rgb in (("640 × 480, no face", rng.integers(90, 170, (480, 640, 3), dtype=np.uint8)),
                       ("12 MP, no face", rng.integers(90, 170, (3000, 4000, 3), dtype=np.uint8)),
                       ("12 MP, 108 faces of ~59 px", large_group_photo()[0])):
        fns = {"first pass": lambda x: detection.detect(x, fine_side=0), "both passes": detection.detect,
               "both + half turn": lambda x: detection.detect(x, upside_down=True)}
        row = {"photo": label, "found": {k: len(fn(rgb)) for k, fn in fns.items()}}
        row.update(_time(fns, rgb, repeats))
        res["fine"].append(row)
    return res


def to_markdown(res: dict) -> str:
    lines = ["| photo | size | dlib HOG ms | BlazeFace ms | HOG / BlazeFace | BlazeFace + landmarks ms | "
             "… without the orientation checks ms |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in res["timing"]:
        h, b, bl, no = r["dlib HOG"], r["BlazeFace"], r["BlazeFace + landmarks"], r["no orientation check"]
        lines.append(f"| {r['photo']} | {r['px']} | {h[0]:.1f} ({h[1]:.1f}) | {b[0]:.1f} ({b[1]:.1f}) | "
                     f"{h[0] / b[0]:.1f}× ({h[1] / b[1]:.1f}×) | {bl[0]:.1f} ({bl[1]:.1f}) | {no[0]:.1f} ({no[1]:.1f}) |")
    lines.append("")
    lines.append("Median (minimum) milliseconds per photo; the detectors take turns on each photo in one run. "
                 "The orientation checks (`upside_down=False` leaves them out, as videos do) are the engine's.")
    lines.append("")
    if res.get("turned"):
        t = res["turned"]
        lines.append(f"Validation photos turned ({t['n']} with a face upright): " + ", ".join(
            f"{k}°: found in {t[k][0]}, the upright landmarks in {t[k][1]}" for k in (90, 180, 270)))
        lines.append("")
    if res["recall"]:
        rc = res["recall"]
        lines.append(f"Recall on {rc['n']} validation photos: " + ", ".join(
            f"{k} {v} ({100 * v / rc['n']:.1f} %)" for k, v in rc["found"].items()))
        for k, v in rc["missed"].items():
            if v:
                lines.append(f"<!-- {k} missed: {' '.join(v[:30])}{' …' if len(v) > 30 else ''} -->")
        lines.append("")
    lines.append("| check | dlib HOG | BlazeFace |")
    lines.append("|---|---|---|")
    by = {}
    for label, name, val in res["checks"]:
        by.setdefault(label, {})[name] = val
    for label, vals in by.items():
        lines.append(f"| {label} | {vals.get('dlib HOG', '')} | {vals.get('BlazeFace', '')} |")
    if res.get("groups"):
        lines += ["", "| the engine's detector (`detect_faces`) on | faces with their landmarks | ms |", "|---|---:|---:|"]
        lines += [f"| {r['photo']} | {r['right']} of {r['faces']} | {r['detect_faces'][0]:.0f} |" for r in res["groups"]]
        lines += ["", "Landmarks within 3 % of the eye distance; median milliseconds."]
    if res.get("fine"):
        lines += ["", "| BlazeFace on a photo | first pass only: ms (faces) | both passes: ms (faces) | "
                  "both, then turned: ms (faces) |", "|---|---:|---:|---:|"]
        for r in res["fine"]:
            a, b, c = r["first pass"], r["both passes"], r["both + half turn"]
            lines.append(f"| {r['photo']} | {a[0]:.0f} ({r['found']['first pass']}) | {b[0]:.0f} ({r['found']['both passes']}) | "
                         f"{c[0]:.0f} ({r['found']['both + half turn']}) |")
        lines += ["", "Median milliseconds per photo, the three taking turns; the second pass runs on photos of more than "
                  "960 px with no face found or one under 5 % of the long side; the half-turn search (photos, not video "
                  "frames) on photos where neither found a face, then a quarter turn either way at the first level."]
    return "\n".join(lines)
