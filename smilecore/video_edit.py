"""The faces of one video frame through the network and back into the frame.

Faces are aligned on their tracked, smoothed landmarks; only a region around each face is
converted to RGB, the network runs on a batch of faces, its outputs are smoothed over frames
in crop space (and reused on in-between frames), and :func:`smilecore.composite.composite_face`
paints them back inside each face's own outline (:mod:`smilecore.facemesh`), as for photos.
"""
from __future__ import annotations

import os
import time

import numpy as np

from . import facemesh, strength as strength_rule
from .align import CROP_SIZE, Alignment, align_face, extract_crop, invert_affine
from .composite import composite_face
from .errors import SmileError
from .pixels import to_8bit
from .video_track import Track

#: The one-thread copy of the model in use (:func:`video_network`), by its file and its time.
_ONE_THREAD: dict = {}


class NoNetwork:
    """Stands for the smile model where every strength is 0 and none was given (``smile detect clip.mp4``:
    faces followed, nothing edited): no model file is read; running it is a bug."""

    size = CROP_SIZE

    def check_strength(self, value: float, what: str = "strength") -> None:
        """Only 0 is asked of it."""

    def run(self, *args, **kwargs):
        raise RuntimeError("the smile network was asked to edit at strength 0")


def video_network(model, strengths) -> object:
    """The model a clip's faces go through: ``model`` (a path, a name, a loaded SmileModel; None: the default)
    with one inference thread unless ``SMILE_THREADS`` says otherwise (the encoder's threads run alongside
    it: more only contend), each of ``strengths`` checked against its range; :class:`NoNetwork` when none
    is given and every strength is 0."""
    from .model import SmileModel
    from .pipeline import load_model

    if model is None and all(float(v) == 0.0 for v in strengths):
        return NoNetwork()
    model = load_model(model)  # (a loaded SmileModel comes back as it is)
    if not os.environ.get("SMILE_THREADS"):
        key = (str(model.path), model.path.stat().st_mtime if model.path.exists() else 0)
        if key not in _ONE_THREAD:
            try:
                _ONE_THREAD.clear()
                _ONE_THREAD[key] = SmileModel(model.path, threads=1)
            except SmileError:
                _ONE_THREAD.clear()
        model = _ONE_THREAD.get(key, model)
    for v in strengths:
        model.check_strength(v, "strength")
    return model


#: Weight of the newest network output in the running average kept in crop space (1 = none).
NET_SMOOTH = 0.55
#: Run the network for a face on every N-th frame at most; in between its last (smoothed)
#: output is composited at the face's new place (the edit follows the face; the network's
#: view of it changes little in 1/12 s).  A strength change re-runs it at once.
NET_EVERY = 2
#: Faces per network call.
BATCH = 4


class FaceEditor:
    """Edits the tracked faces of one frame (RGB region work, batch network calls)."""

    def __init__(self, model, net_smooth: float = NET_SMOOTH, net_every: int = NET_EVERY):
        self.model = model
        self.size = model.size
        self.net_smooth = net_smooth
        self.net_every = max(1, int(net_every))
        self.t = {"align": 0.0, "infer": 0.0, "composite": 0.0}

    def edit(self, jobs: list[tuple[Track, float]], get_region, put_region, shape: tuple[int, int]) -> int:
        """``jobs``: (track, strength) for faces to edit now.  ``get_region(box)`` returns the RGB
        pixels of a frame box, ``put_region(box, old, new)`` writes changed ones back.  Returns
        the number of faces composited."""
        return self.apply(self.prepare(jobs, get_region, shape), put_region)

    def prepare(self, jobs: list[tuple], get_region, shape: tuple[int, int]) -> list:
        """Align, crop and run the network (in order: the outputs are smoothed over frames).
        ``jobs``: (track, strength) or (track, strength, landmarks of this frame); without them
        the track's ``smoothed`` landmarks are used."""
        ready = []
        for start in range(0, len(jobs), BATCH):
            batch = jobs[start:start + BATCH]
            t0 = time.perf_counter()
            items = []
            for job in batch:
                tr, lam = job[0], job[1]
                al = align_face(job[2] if len(job) > 2 else tr.smoothed, self.size)
                m = max(8, int(0.12 * self.size / max(al.scale, 1e-6)))
                x0, y0, x1, y1 = al.photo_region(shape, margin=0)
                x0, y0 = max(0, x0 - m) & ~1, max(0, y0 - m) & ~1
                x1, y1 = min(shape[1], x1 + m), min(shape[0], y1 + m)
                if x1 - x0 < 4 or y1 - y0 < 4:
                    continue
                box = (x0, y0, x1, y1)
                region = get_region(box)
                box = (x0, y0, x0 + region.shape[1], y0 + region.shape[0])
                shift = np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]], np.float64)
                mat = al.matrix @ shift
                al_r = Alignment(matrix=mat, inverse=invert_affine(mat), size=self.size)
                st = tr.net_state
                reuse = (st is not None and st["age"] + 1 < self.net_every
                         and abs(lam - st["lam"]) <= 0.02 * max(1.0, abs(lam)))
                crop = None
                if not reuse:
                    crop = extract_crop(region, al_r)
                    crop = to_8bit(crop)
                items.append((tr, lam, box, region, al_r, crop))
            self.t["align"] += time.perf_counter() - t0
            if not items:
                continue
            t0 = time.perf_counter()
            fresh = [k for k, it in enumerate(items) if it[5] is not None]
            net, seen, levels = None, None, None
            if fresh:
                crops = np.stack([items[k][5] for k in fresh])
                seen = facemesh.network().read(crops)
                # the face's own smile, smoothed over frames like the outputs; a face that already
                # smiles gets what it lacks of the smile asked for (smilecore.strength)
                levels = seen.level.astype(np.float64)
                if self.net_smooth < 1.0:
                    for j, k in enumerate(fresh):
                        st = items[k][0].net_state
                        if st is not None:
                            levels[j] = self.net_smooth * levels[j] + (1 - self.net_smooth) * st["level"]
                lams = strength_rule.face_strengths(np.array([items[k][1] for k in fresh]), levels)
                for j, k in enumerate(fresh):
                    tr = items[k][0]
                    tr.own = float(strength_rule.own_strength(levels[j]))
                    # something in front of the mouth: the smile goes at once (the cover hides the mouth
                    # anyway, and no smoothed output is left on it); once it is gone the smile comes back
                    # eased over a fade (the tracker eases tr.mouth towards tr.mouth_target)
                    seen_mouth = not seen.mouth_covered(j, items[k][4].inverse, items[k][3].shape)
                    if not seen_mouth:
                        tr.mouth, tr.net_state = 0.0, None
                    tr.mouth_target = float(seen_mouth)
                    tr.mouth_covered |= not seen_mouth
                    if seen_mouth and items[k][1] > 0 and lams[j] == 0.0:  # (asked to smile, lacking none of it)
                        tr.as_is = tr.own
                    lams[j] *= np.float32(tr.mouth)
                net = self.model.run(crops, lams)
            self.t["infer"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            for k, (tr, lam, box, region, al_r, crop) in enumerate(items):
                st = tr.net_state
                if crop is None:  # the last output, at the face's new place
                    rgb, mask, flow, shade, area = st["rgb"], st["mask"], st["flow"], st["shade"], st["area"]
                    st["age"] += 1
                else:
                    j = fresh.index(k)
                    # a face that already shows its teeth keeps them (as for photos)
                    rgb, mask, flow = net.rgb[j], facemesh.painted_mask(net.mask[j], seen.teeth[j]), net.flow[j]
                    outline = seen.outline[j]
                    shade = None if net.shade is None else net.shade[j]
                    if self.net_smooth < 1.0 and st is not None:
                        a = self.net_smooth
                        rgb = a * rgb + (1 - a) * st["rgb"]
                        mask = a * mask + (1 - a) * st["mask"]
                        flow = a * flow + (1 - a) * st["flow"]
                        outline = a * outline + (1 - a) * st["outline"]
                        if shade is not None and st["shade"] is not None:
                            shade = a * shade + (1 - a) * st["shade"]
                    area = facemesh.edit_region(outline, self.size, flow)
                    tr.net_state = {"rgb": rgb, "mask": mask, "flow": flow, "shade": shade, "outline": outline,
                                    "area": area, "age": 0, "lam": lam, "level": levels[j]}
                ready.append((tr, box, region, al_r, rgb, mask, flow, shade, area))
            self.t["infer"] += time.perf_counter() - t0
        return ready

    def apply(self, ready: list, put_region) -> int:
        """Composite prepared faces into the frame (may run on another thread than :meth:`prepare`);
        a face counts as edited in this frame only if its pixels changed."""
        t0 = time.perf_counter()
        done = 0
        for tr, box, region, al_r, rgb, mask, flow, shade, area in ready:
            out = region.copy()
            e = composite_face(region, al_r, rgb, mask, flow, out=out, face_area=area, shade=shade)
            if e is None or np.array_equal(out, region):  # (a face that lacks no smile is given strength 0)
                continue
            put_region(box, region, out)
            tr.frames_edited += 1
            done += 1
        self.t["composite"] += time.perf_counter() - t0
        return done
