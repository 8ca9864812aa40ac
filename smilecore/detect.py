"""Face detection (BlazeFace, ONNX Runtime) and five-point landmarks (dlib's freely redistributable model,
placed by smilecore.landmarks).

Detection: MediaPipe's BlazeFace short-range network (smilecore.blazeface) on a copy whose
long side is at most :data:`DETECT_MAX_SIDE`, at up to three input sizes (:data:`LEVELS`: in a
photo all three, in a video frame the larger ones only when no face or only smaller faces were
found), candidates merged and the unsure ones verified on upright views. Its six keypoints give
each face's roll and the box dlib's HOG detector would have drawn; dlib's 5-point shape predictor
then places the landmarks on the full-resolution photo (turned upright first when the face is
tilted), so landmarks and crops are those the engine made with HOG boxes. docs/architecture.md has
the numbers.
"""
from __future__ import annotations

import cv2
import numpy as np

from . import blazeface
from .dlib_models import (  # noqa: F401 (also this module's API)
    HOG_CONFIRM_MIN,
    HOG_MIN_SCORE,
    dlib_model_file,
    hog_boxes,
    landmarks5,
    load_dlib_models,
)
from .arguments import check_min_face
from .errors import InputError
from .face import Face
from .landmarks import (  # noqa: F401 (also this module's API)
    BOX_FIT,
    BOX_FIT5,
    UPRIGHT_DEG,
    Detection,
    box_from5,
    frame5,
    hog_like_box,
    refine_landmarks,
)
from . import orient
from .orient import REREAD_DEG, Pixels
from .pixels import to_rgb8

#: Detection runs on a copy whose long side is at most this many pixels.
DETECT_MAX_SIDE = 640
#: BlazeFace probabilities below this are treated as non-faces (MediaPipe's own threshold is 0.5).
MIN_SCORE = 0.5
#: A photo with at most this many faces (a portrait) has each judged by dlib's HOG detector (:func:`_orient`).
REREAD_FACES = 4


#: Pyramid levels: (long side of the network's input in pixels, margin added around the picture
#: as a fraction of its long side, smallest and largest face kept in input pixels, and when the
#: level runs without ``every`` (:func:`_first_pass`; video frames): only if no face was found yet
#: or the smallest is under this fraction of the long side; a photo runs every level). The network
#: is fully convolutional; at 128 px it sees the picture as it was trained (with a margin, so that
#: tightly cropped faces are whole); the larger inputs find the smaller faces (~12 px in the input)
#: without the seams of tiles.
LEVELS = [
    (128, 0.2, 0.0, np.inf, 1.0),
    (224, 0.0, 12.0, 110.0, 0.3),
    (640, 0.0, 12.0, 110.0, 0.12),
]
#: A level's input (but the first's) is never enlarged more than this over the detection copy.
MAX_UPSCALE = 2.0
#: Candidates (BlazeFace probability ≥ min_score) are kept when the mean of their probability
#: and the network's on two upright views of them (1.6 box sides, as is and mirrored) reaches
#: this. (Four views, adding 2.2 box sides, separated face-free candidates from faces no better
#: at twice the cost.)
VERIFY_MIN = 0.70
VERIFY_CONTEXT = (1.6,)
#: Side of the verification views (network input).
VERIFY_SIZE = 128
#: Candidates this sure need no verification (no face-free picture of benchmarks/detector.py
#: gives a candidate above 0.77).
SURE = 0.85
#: A candidate below this probability that only one anchor of one level voted for is dropped
#: without verification.
LONE_MIN = 0.6
#: Small faces in large photos. The levels above find faces from about 20 px in the detection
#: copy, about 3 % of the photo's long side (190 px in a 24 MP photo). When the photo is at least
#: FINE_MIN_GAIN × larger than that copy and no face was found, or the smallest found is under
#: FINE_WHEN of the long side (near that limit: a group whose smaller faces may have been missed,
#: people further away), a second copy of long side ≤ FINE_MAX_SIDE is searched as level 2
#: searches the first, in tiles of at most FINE_TILE px overlapping by FINE_OVERLAP (more than the
#: largest face a tile keeps, so every face is whole in one of them; memory stays bounded at any
#: photo size). A face both passes found is the first pass's.
#: Faces found with the photo turned (see :func:`detect`'s ``upside_down``) are kept only when dlib's
#: HOG detector sees them upright too: turned face-free pictures gave BlazeFace candidates of 0.77–0.87
#: that passed the usual verification (HOG saw no face in them), while 18–29 % of real faces turned
#: half a turn read 0.72–0.85 (UTKFace, 150 faces, two paddings).
#: The turns (counter-clockwise quarter turns) a photo with no face is searched in, until one finds one.
QUARTERS = (2, 1, 3)
#: Long side of the network's input (at most) for the levels that run behind a close-up (:func:`_first_pass`):
#: faces from 12 px there, about 3 % of the long side, at about half the cost of the 640-px level (as
#: many people behind a close-up found as at 640 px in the README's probe; 384 px missed two of the
#: four 100-px faces of benchmarks/detector.py's close-up).
CLOSE_UP_INPUT = 448
#: Degrees from a quarter turn within which a face counts as turned by it (:func:`smilecore.orient.photo_turn`).
TURN_TOLERANCE = 35.0
FINE_MAX_SIDE = 1600
FINE_TILE = 768
FINE_OVERLAP = 128
FINE_WHEN = 0.05
FINE_MIN_GAIN = 1.5


def _ceil16(x: float) -> int:
    return int(np.ceil(x / 16) * 16)


def _halved(pyr: list, k: int) -> np.ndarray:
    """``pyr[k]``: the copy ``pyr[0]`` halved k times (cv2.pyrDown), made on first use."""
    while len(pyr) <= k:
        pyr.append(cv2.pyrDown(pyr[-1]))
    return pyr[k]


def _run_level(net, small: np.ndarray, level, min_score: float, done: float, pyr: list | None = None):
    """Detections of one level in copy pixels; None when the level would add nothing (its input is
    no larger than ``done``, the previous level's)."""
    long_in, margin, lo, hi, _ = level
    h, w = small.shape[:2]
    long_side = max(h, w)
    g = long_in / (long_side * (1 + 2 * margin))
    if done:  # the first level always sees the picture at the network's own size
        g = min(g, MAX_UPSCALE)
    if long_side * (1 + 2 * margin) * g <= done * 1.01:
        return None, done
    sw, sh = max(1, round(w * g)), max(1, round(h * g))
    pad = round(margin * long_side * g)
    W, H = _ceil16(sw + 2 * pad), _ceil16(sh + 2 * pad)
    ox, oy = (W - sw) // 2, (H - sh) // 2
    canvas = np.zeros((H, W, 3), np.uint8)
    pyr = [small] if pyr is None else pyr
    k = 0  # halving first: area-averaging a large copy by a non-integer factor is slow
    while (small.shape[1] >> (k + 1)) >= sw and (small.shape[0] >> (k + 1)) >= sh and min(small.shape[:2]) >> (k + 1) > 16:
        k += 1
    src = _halved(pyr, k)
    canvas[oy : oy + sh, ox : ox + sw] = cv2.resize(src, (sw, sh), interpolation=cv2.INTER_AREA if sw < src.shape[1] else cv2.INTER_LINEAR)
    boxes, kps, prob = net.run(canvas[None], min_score)[0]
    sizes = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    keep = (sizes >= lo) & (sizes <= hi)
    fx, fy = w / sw, h / sh
    sc = np.array([fx, fy])
    off = np.array([ox, oy])
    return (np.concatenate([(boxes[keep, :2] - off) * sc, (boxes[keep, 2:] - off) * sc], axis=1),
            (kps[keep] - off) * sc, prob[keep]), max(W, H)


def _verify(net, small: np.ndarray, merged, known: list, pyr: list | None = None) -> list:
    """Keeps the merged candidates whose mean probability over :data:`VERIFY_CONTEXT` views passes.
    ``known``: (box, kept) of candidates already decided (reused when a candidate overlaps one by
    IoU > 0.5; the new decisions are appended)."""
    decided, todo = {}, []
    for i, cand in enumerate(merged):
        if cand[2] >= SURE or (cand[2] < LONE_MIN and cand[3] < 2):
            decided[i] = cand[2] >= SURE
            continue
        for box, ok in known:
            if blazeface.iou(cand[0], box[None])[0] > 0.5:
                decided[i] = ok
                break
        else:
            todo.append(i)
    new = _verify_views(net, small, [merged[i] for i in todo], pyr) if todo else []
    for i, ok in zip(todo, new):
        decided[i] = ok
        known.append((merged[i][0], ok))
    return [c for i, c in enumerate(merged) if decided[i]]


def _verify_views(net, small: np.ndarray, merged, pyr: list | None = None) -> list[bool]:
    s = VERIFY_SIZE
    views = []
    pyramid = [small] if pyr is None else pyr
    for box, kps, _, _ in merged:
        c = (box[:2] + box[2:]) / 2
        d = kps[1] - kps[0]
        roll = float(np.degrees(np.arctan2(d[1], d[0])))
        for ctx in VERIFY_CONTEXT:
            scale = s / (_size(box) * ctx)
            level = 0
            while scale * 2 ** level < 0.5 and min(small.shape[:2]) >> (level + 1) > 16:
                level += 1
            src = _halved(pyramid, level)
            k = small.shape[1] / src.shape[1]
            cc = (c + 0.5) / k - 0.5
            rot = cv2.getRotationMatrix2D((float(cc[0]), float(cc[1])), roll, scale * k)
            rot[:, 2] += s / 2 - cc
            p = cv2.warpAffine(src, rot, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            views += [p, p[:, ::-1]]
    res = net.run(np.stack(views), 0.05)
    n = 2 * len(VERIFY_CONTEXT)
    kept = []
    for i, cand in enumerate(merged):
        probs = [cand[2]]
        for j, (b, _, pr) in enumerate(res[i * n : (i + 1) * n]):
            if not len(pr):
                probs.append(0.0)
                continue
            # the view must show a face of the candidate's size at its centre (not a smaller face within it)
            expect = s / VERIFY_CONTEXT[j // 2]
            size = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
            ok = (np.abs((b[:, :2] + b[:, 2:]) / 2 / s - 0.5).max(1) < 0.15) & (size > 0.6 * expect) & (size < 1.6 * expect)
            probs.append(float(pr[ok].max()) if ok.any() else 0.0)
        kept.append(bool(np.mean(probs) >= VERIFY_MIN))
    return kept


def _shrink(rgb8: np.ndarray, max_side: int) -> np.ndarray:
    """The detection copy: long side ≤ ``max_side``, area-averaged; a photo more than 2 × too
    large is first sampled to twice that size (nearest pixel), which costs a fraction of
    averaging all of it."""
    h, w = rgb8.shape[:2]
    f = min(1.0, max_side / max(h, w))
    if f == 1.0:
        return rgb8
    size = (max(1, round(w * f)), max(1, round(h * f)))
    if f < 0.5:
        rgb8 = cv2.resize(rgb8, (2 * size[0], 2 * size[1]), interpolation=cv2.INTER_NEAREST)
    return cv2.resize(rgb8, size, interpolation=cv2.INTER_AREA)


def detect(rgb8: np.ndarray, max_side: int = DETECT_MAX_SIDE, min_score: float = MIN_SCORE,
           fine_side: int = FINE_MAX_SIDE, upside_down: bool = False) -> list[Detection]:
    """BlazeFace detections in photo pixels, merged over the pyramid levels (see :data:`LEVELS`)
    and verified, best first; then, in a photo larger than the detection copy, the small faces
    of a second, larger copy (long side ≤ ``fine_side``; 0: none; see :data:`FINE_MAX_SIDE`).
    BlazeFace finds faces turned up to about ±120° from upright, but places the keypoints of a face
    turned more than :data:`REREAD_DEG` less well, and reads some faces turned 100–300° in a wrong
    orientation altogether; those faces are read again on turned views (:func:`smilecore.orient.reread`).

    ``fine_side`` > 0 (photos) also runs every level of the first pass (:func:`_first_pass`'s
    ``every``: the people behind a close-up); 0 (video frames) keeps the early stop.

    ``upside_down`` (photos; videos track their faces instead) checks which way up the faces are
    (:func:`_orient`): a scan or photo stored upside down without an EXIF orientation, someone
    hanging head down, a face BlazeFace reads in a wrong orientation; and a photo whose faces mostly
    stand turned the same quarter or half turn is searched again whole, turned upright
    (:func:`_turned_photo`: a group photo lying on its side)."""
    net = blazeface.network()
    small = _shrink(rgb8, max_side)
    long_side = float(max(small.shape[:2]))
    merged = _first_pass(net, small, min_score, every=fine_side > 0)
    out = _in_photo(merged, small, rgb8)
    fine_long = min(fine_side, max(rgb8.shape[:2]))
    if fine_long >= FINE_MIN_GAIN * long_side and (not merged or min(_size(d[0]) for d in merged) < FINE_WHEN * long_side):
        out += [d for d in _fine_pass(net, rgb8, fine_long, min_score) if not _overlaps(d.box, [o.box for o in out])]
    px, upright = Pixels(photo=rgb8, copy=small), [True] * len(out)
    if upside_down:
        out, upright = _orient(net, px, out, min_score)
    out = [orient.reread(net, px, d) if abs(d.roll) > REREAD_DEG or not up else d for d, up in zip(out, upright)]
    quarters = orient.photo_turn(out, TURN_TOLERANCE) if upside_down else 0
    return _turned_photo(rgb8, out, quarters, max_side, min_score, fine_side) if quarters else out


def _turned_photo(rgb8: np.ndarray, found: list[Detection], quarters: int, max_side: int, min_score: float,
                  fine_side: int) -> list[Detection]:
    """``found`` with the faces of the photo turned ``quarters`` quarter turns (where they stand upright),
    searched as an upright photo is (both passes), in the photo's pixels. Where the two searches found
    the same face, the reading of the search it stood nearer upright in is kept."""
    h, w = rgb8.shape[:2]
    # the full-resolution photo turned (a copy of it), not the detection copy: the small faces'
    # views are cut from it (orient.Pixels), and the 1,600-px copy read two of 40 small faces worse
    turned = np.ascontiguousarray(np.rot90(rgb8, quarters))
    again = [(orient.turned_back(d, quarters, w, h), abs(d.roll))
             for d in detect(turned, max_side, min_score, fine_side, upside_down=False)]
    out = [d for d, tilt in again if not any(_overlaps(d.box, [f.box]) and abs(f.roll) < tilt for f in found)]
    out += [f for f in found if not _overlaps(f.box, [d.box for d in out])]
    return sorted(out, key=lambda d: -d.score)


def _orient(net, px: Pixels, found: list[Detection], min_score: float) -> tuple[list[Detection], list[bool]]:
    """The faces of a photo the right way up, and for each whether it is known to be upright.

    dlib's HOG detector sees only upright faces, which makes it the judge of orientation here; it
    judges each face on a view of it (:mod:`smilecore.orient`).
    - No face found: the faces of the detection copy turned half a turn (:func:`_turned_pass`), or
      else a quarter turn either way (large faces only: BlazeFace finds smaller ones turned that far
      as they are, but not a face that fills a sideways crop).
    - A portrait (at most :data:`REREAD_FACES` faces): a face HOG does not see upright as
      BlazeFace turned it is read again on turned views (:func:`smilecore.orient.reread`). When
      that is every face and BlazeFace is unsure of all of them, the photo may be upside down with
      BlazeFace misled (a false face in the clothes, an upside-down face read as an upright one):
      when the turned copy has faces, they replace them.
    - A group BlazeFace is unsure of throughout: :func:`_half_turn`.
    """
    if not found:  # half a turn first (scans, photos stored upside down), then a quarter either way
        for quarters in QUARTERS:
            turned = _turned_pass(net, px, min_score, quarters)
            if turned:
                break
        return turned, [True] * len(turned)
    unsure = all(d.score < SURE for d in found)
    if len(found) > REREAD_FACES:
        found = _half_turn(net, px, found, min_score) if unsure else found
        return found, [True] * len(found)
    upright = [not orient.hog(px, d) < 0.0 for d in found]  # NaN (too small to judge): as BlazeFace read it
    if unsure and not any(upright):
        turned = _turned_pass(net, px, min_score)
        if turned:
            return turned, [True] * len(turned)
    return found, upright


def _turned_pass(net, px: Pixels, min_score: float, quarters: int = 2) -> list[Detection]:
    """The faces of the detection copy turned ``quarters`` quarter turns counter-clockwise, in the
    photo's pixels: those dlib's HOG detector sees upright too (:data:`HOG_CONFIRM_MIN`)."""
    small = px.copy
    turned = np.ascontiguousarray(np.rot90(small, quarters))
    levels = len(LEVELS) if quarters == 2 else 1  # a quarter turn: large faces only (BlazeFace finds the rest)
    h, w = small.shape[:2]
    back = {1: lambda p: np.stack([w - p[..., 1], p[..., 0]], -1), 2: lambda p: np.stack([w - p[..., 0], h - p[..., 1]], -1),
            3: lambda p: np.stack([p[..., 1], h - p[..., 0]], -1)}[quarters % 4]  # copy coordinates, turned back
    out = []
    for box, kps, p, n in _first_pass(net, turned, min_score, levels):
        corners = back(np.array([[box[0], box[1]], [box[2], box[3]]], np.float64))
        out.append((np.concatenate([corners.min(0), corners.max(0)]), back(np.asarray(kps, np.float64)), p, n))
    return [d for d in _in_photo(out, small, px.photo) if orient.hog(px, d) >= HOG_CONFIRM_MIN]


def _half_turn(net, px: Pixels, found: list[Detection], min_score: float) -> list[Detection]:
    """``found``, faces BlazeFace is unsure of, with those that are upside down found again in the
    detection copy turned half a turn.

    BlazeFace takes some upside-down faces for upright ones (probability 0.6–0.85, roll near 0,
    its keypoints on the wrong features: 44 of 300 UTKFace faces turned). A face is upside down
    when dlib's HOG detector, which only sees upright faces, scores its view turned half a turn
    above its upright view; it is then replaced by the turned copy's face at its place, or dropped
    when there is none (no edit rather than one on the wrong features)."""
    suspects = [i for i, d in enumerate(found) if orient.upside_down(px, d)]
    if not suspects:
        return found
    turned = _turned_pass(net, px, min_score)
    out = []
    for i, d in enumerate(found):
        at = [t for t in turned if _overlaps(t.box, [d.box])] if i in suspects else [d]
        out += [max(at, key=lambda t: t.score)] if at else []
    return out


def _first_pass(net, small: np.ndarray, min_score: float, levels: int = len(LEVELS), every: bool = False) -> list:
    """The first ``levels`` pyramid levels (:data:`LEVELS`) on the detection copy ``small``: merged,
    verified candidates. A level runs while no face or a small one has been found; with ``every`` the
    rest run too (a close-up with people behind it), finding only faces apart from those already found
    (what they see inside a close-up would blend into it and move its keypoints)."""
    long_side = float(max(small.shape[:2]))
    found, merged, known, done, pyr, close = [], [], [], 0.0, [small], None
    for level in LEVELS[:levels]:
        if close is None and merged and min(_size(d[0]) for d in merged) >= level[4] * long_side:
            if not every:
                break
            close = [d[0] for d in merged]
        if close is not None:  # behind a close-up: faces from ~3 % of the long side, the copy never enlarged
            level = (min(level[0], CLOSE_UP_INPUT, int(long_side)),) + tuple(level[1:])
        res, done = _run_level(net, small, level, min_score, done, pyr)
        if res is None:
            continue
        if close:
            apart = np.array([not _overlaps(b, close) for b in res[0]], bool)
            res = tuple(x[apart] for x in res)
        found.append(res)
        merged = _verify(net, small, _merge(found), known, pyr)
    return merged


def _in_photo(merged, copy: np.ndarray, rgb8: np.ndarray) -> list[Detection]:
    """Merged candidates of a copy as Detections in the photo's pixels."""
    scale = np.array([rgb8.shape[1] / copy.shape[1], rgb8.shape[0] / copy.shape[0]])
    return [
        Detection(box=tuple(float(v) for v in box * np.tile(scale, 2)), keypoints=kps * scale - 0.5, score=p)
        for box, kps, p, _ in merged
    ]


def _tiles(n: int) -> tuple[list[int], int]:
    """Starts and length of the fewest tiles of at most :data:`FINE_TILE` px that cover ``n`` px,
    evenly spread, each overlapping the next by at least :data:`FINE_OVERLAP` px."""
    if n <= FINE_TILE:
        return [0], n
    k = int(np.ceil((n - FINE_OVERLAP) / (FINE_TILE - FINE_OVERLAP)))
    size = min(n, _ceil16((n + FINE_OVERLAP * (k - 1)) / k))
    return [int(np.floor(i * (n - size) / (k - 1))) for i in range(k)], size


def _fine_pass(net, rgb8: np.ndarray, long_side: int, min_score: float) -> list[Detection]:
    """Faces of 12–110 px in a copy of long side ``long_side``, found tile by tile, merged and
    verified on that copy; a face touching a tile's inner edge is left to the tile that holds it whole."""
    fine = _shrink(rgb8, long_side)
    h, w = fine.shape[:2]
    _, _, lo, hi, _ = LEVELS[-1]
    boxes, kps, prob = [], [], []
    (ys, th), (xs, tw) = _tiles(h), _tiles(w)
    for y in ys:
        for x in xs:
            canvas = np.zeros((_ceil16(th), _ceil16(tw), 3), np.uint8)
            canvas[:th, :tw] = fine[y : y + th, x : x + tw]
            b, k, p = net.run(canvas[None], min_score)[0]
            size = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
            keep = (size >= lo) & (size <= hi)
            keep &= ((b[:, 0] > 1) | (x == 0)) & ((b[:, 1] > 1) | (y == 0))
            keep &= ((b[:, 2] < tw - 1) | (x + tw >= w)) & ((b[:, 3] < th - 1) | (y + th >= h))
            off = np.array([x, y], np.float32)
            boxes.append(b[keep] + np.tile(off, 2))
            kps.append(k[keep] + off)
            prob.append(p[keep])
    if not sum(len(p) for p in prob):
        return []
    found = [(np.concatenate(boxes), np.concatenate(kps), np.concatenate(prob))]
    return _in_photo(_verify(net, fine, _merge(found), [], [fine]), fine, rgb8)


def _overlaps(box, others) -> bool:
    """Whether ``box`` is one of ``others``' faces (IoU > 0.3, or mostly within or around one)."""
    if not others:
        return False
    b, o = np.asarray(box, np.float64), np.asarray(others, np.float64)
    return bool((blazeface.iou(b, o) > 0.3).any() or (blazeface.overlap_of_smaller(b, o) > 0.6).any())


def _size(box) -> float:
    return float(max(box[2] - box[0], box[3] - box[1]))


def _merge(found):
    if not found or not sum(len(p) for _, _, p in found):
        return []
    boxes = np.concatenate([b for b, _, _ in found])
    kps = np.concatenate([k for _, k, _ in found])
    prob = np.concatenate([p for _, _, p in found])
    return blazeface.weighted_nms(boxes, kps, prob, 0.3)


def warm_up() -> None:
    """Load what detection uses (BlazeFace, dlib's shape predictor and HOG detector) now, so that
    the first photo is not slower than the others (``smile worker`` does this at start)."""
    blazeface.network()
    load_dlib_models()


def detect_boxes(
    rgb8: np.ndarray, max_side: int = DETECT_MAX_SIDE, min_score: float = MIN_SCORE, fine_side: int = FINE_MAX_SIDE
) -> list[tuple[tuple[float, float, float, float], float]]:
    """Face boxes ``((x0, y0, x1, y1), score)`` in photo pixels (exclusive end, unclipped), in the
    shape dlib's HOG detector drew them (upright frame of each face)."""
    out = []
    for det in detect(rgb8, max_side, min_score, fine_side):
        c, side, _ = hog_like_box(det)
        out.append(((c[0] - side / 2, c[1] - side / 2, c[0] + side / 2, c[1] + side / 2), det.score))
    return out

def detect_faces(
    image: np.ndarray,
    min_face: int | None = None,
    max_side: int = DETECT_MAX_SIDE,
    min_score: float = MIN_SCORE,
    small_faces: bool = True,
    upside_down: bool = True,
) -> list[Face]:
    """Find faces in an (H,W[,C]) image array; largest first.

    Faces come from :func:`detect` (BlazeFace; ``small_faces=False``, as video frames, skips its
    second pass for the small faces of large photos, see :data:`FINE_MAX_SIDE`, and stops the first
    pass at the levels a close-up makes unneeded; ``upside_down=False`` skips the checks of which way
    up the faces are and the searches of a photo turned); landmarks are computed on the
    full-resolution image by :func:`refine_landmarks`; ``box`` is the HOG-shaped box, clipped to
    the image; ``facing`` is how squarely the face looks at the camera (:attr:`Detection.facing`);
    ``index`` is the face's place in the returned list.
    """
    min_face = check_min_face(min_face)
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or 0 in image.shape[:2]:
        raise InputError(f"image is empty or not an (H,W[,C]) array: {getattr(image, 'shape', type(image).__name__)}")
    rgb8 = to_rgb8(image)
    h, w = rgb8.shape[:2]
    faces = []
    for det in detect(rgb8, max_side, min_score, FINE_MAX_SIDE if small_faces else 0, upside_down):
        c, side, _ = hog_like_box(det)
        box = (c[0] - side / 2, c[1] - side / 2, c[0] + side / 2, c[1] + side / 2)
        ib = (max(0, int(box[0])), max(0, int(box[1])), min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3]))))
        if ib[2] <= ib[0] or ib[3] <= ib[1]:
            continue
        face = Face(box=ib, landmarks=refine_landmarks(rgb8, det), score=det.score, facing=det.facing)
        if min_face is not None and face.size < min_face:
            continue
        faces.append(face)
    faces.sort(key=lambda fc: -fc.size)
    for i, face in enumerate(faces):
        face.index = i
    return faces
