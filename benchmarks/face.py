"""The engine's work per face, on one thread: what issue 15's cost target counts.

For one face of a 3 MP photo (the neutral astronaut, :mod:`benchmarks.photos`), every step the
engine runs per face once the photo is decoded and its faces are found: the 5-point landmarks,
the alignment and crop, the face mesh (outline, own teeth, smile level, covered mouth), the smile model at
λ = 1 and 2, the edit region and painted mask, and the composite at the photo's resolution.
The face mesh runs twice, taking turns: the shipped graph (each PReLU written as two depthwise
1 × 1 convolutions, ``tools/convert_mediapipe.py``) and the baseline, the same weights with ONNX's
``PRelu`` operator as the converter wrote it up to 2026-12-03 (rebuilt here by
:func:`with_prelu`); the composite runs twice too: the engine's and, as its baseline, the one it
replaced (:mod:`benchmarks.composite_before`, the same arithmetic with a fresh array for each step).
Every step is timed interleaved with the others, ``repeats`` times, and reported as median / 90th
percentile milliseconds. Then the whole chain per face, as the engine runs it, is timed as one call
(λ = 1 and λ = 2 taking turns; then λ = 2 and λ = 2 through the baseline composite taking turns): what
issue 15's "everything the engine runs per face" is. Needs ``onnx`` (the ``[test]`` extra).
"""
from __future__ import annotations

import statistics
import time

import numpy as np

#: (key, what is timed)
STEPS = [
    ("landmarks", "5-point landmarks (dlib, on the detector's box)"),
    ("align", "alignment and the 256² crop"),
    ("mesh", "face mesh: outline, own teeth, smile level, covered mouth"),
    ("mesh_prelu", "face mesh, baseline graph (ONNX `PRelu`)"),
    ("model1", "smile model, λ = 1"),
    ("model2", "smile model, λ = 2"),
    ("region", "edit region and painted mask"),
    ("composite", "composite at the photo's resolution"),
    ("composite_before", "composite, baseline (the engine's up to f1ec605)"),
]
#: (key, what is timed): the whole chain per face as the engine runs it, one timed call, no other step between
CHAINS = [
    ("chain1", "**all of it as one call, λ = 1**"),
    ("chain2", "**all of it as one call, λ = 2**"),
    ("chain2_before", "all of it as one call, λ = 2, baseline composite"),
]


def with_prelu(model):
    """``model`` (an ``onnx.ModelProto`` of the converted face mesh) with each PReLU that the converter
    writes as ``Relu``, two depthwise 1 × 1 ``Conv`` and an ``Add`` put back as one ``PRelu`` node."""
    import onnx
    from onnx import helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    weights = {i.name: i for i in g.initializer}
    nodes, used, i, n = [], set(), 0, list(g.node)
    while i < len(n):
        a = n[i : i + 4]
        if ([x.op_type for x in a] == ["Relu", "Conv", "Conv", "Add"] and a[1].input[0] == a[0].input[0]
                and a[2].input[0] == a[0].output[0] and list(a[3].input) == [a[1].output[0], a[2].output[0]]):
            slope = numpy_helper.to_array(weights[a[1].input[1]])
            name = a[1].input[1] + "_prelu"
            g.initializer.append(numpy_helper.from_array(slope.reshape(-1, 1, 1), name))
            nodes.append(helper.make_node("PRelu", [a[0].input[0], name], [a[3].output[0]]))
            used.update((a[1].input[1], a[2].input[1]))
            i += 4
        else:
            nodes.append(n[i])
            i += 1
    del g.node[:]
    g.node.extend(nodes)
    kept = [w for w in g.initializer if w.name not in used]
    del g.initializer[:]
    g.initializer.extend(kept)
    return out


def run(repeats: int = 60, against: str | None = None) -> dict:
    """Time every step; returns {"ms": {key: (median, p90)}, "prelu_nodes", "side" (the face's size in
    pixels), "model" (its version)}; with ``against`` (a smile model's path) also that model at λ = 2,
    taking turns with the others (``ms["against"]``, its version in "against")."""
    import cv2

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # OpenCV's resizes and warps on one thread too
    try:
        return _timed_steps(repeats, against)
    finally:
        cv2.setNumThreads(threads)


def _timed_steps(repeats: int, against: str | None = None) -> dict:
    import onnx
    import onnxruntime as ort

    from smilecore import detect as facemod
    from smilecore import facemesh
    from smilecore.align import align_face, extract_crop
    from smilecore.blazeface import MODELS_DIR
    from smilecore.composite import composite_face
    from smilecore.model import SmileModel
    from smilecore.registry import resolve_model

    from .composite_before import composite_before
    from .photos import make_photo

    photo = make_photo(2000, 1500, 1)
    det = facemod.detect(photo)[0]
    model = SmileModel(resolve_model(None), threads=1)
    mesh, baseline = facemesh.FaceMesh(threads=1), facemesh.FaceMesh(threads=1)
    prelu = with_prelu(onnx.load(str(MODELS_DIR / facemesh.MESH_FILE)))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    baseline.session = ort.InferenceSession(prelu.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    other = SmileModel(against, threads=1) if against else None
    times: dict[str, list[float]] = {k: [] for k, _ in STEPS + ([("against", "")] if other else [])}

    def timed(key: str, fn, *args, **kw):
        t0 = time.perf_counter()
        r = fn(*args, **kw)
        times[key].append((time.perf_counter() - t0) * 1000)
        return r

    def aligned(lm):
        al = align_face(lm, model.size)
        return al, extract_crop(photo, al)[None]

    for rep in range(repeats + 3):  # the first rounds warm caches up and are dropped
        lm = timed("landmarks", facemod.refine_landmarks, photo, det)
        al, crop = timed("align", aligned, lm)
        seen = timed("mesh", mesh.read, crop)
        timed("mesh_prelu", baseline.read, crop)
        # λ = 1 and 2 each first in turn: the model run right after the baseline face mesh reads slower
        if rep % 2 == 0:
            timed("model1", model.run, crop, 1.0)
            net = timed("model2", model.run, crop, 2.0)
        else:
            net = timed("model2", model.run, crop, 2.0)
            timed("model1", model.run, crop, 1.0)
        if other is not None:
            timed("against", other.run, crop, 2.0)
        area, mask = timed("region", lambda: (facemesh.edit_region(seen.outline[0], model.size, net.flow[0]),
                                              facemesh.painted_mask(net.mask[0], seen.teeth[0])))
        pair = [("composite", composite_face), ("composite_before", composite_before)]
        for key, fn in pair if rep % 2 == 0 else pair[::-1]:  # each goes first as often: the order matters here
            timed(key, fn, photo, al, net.rgb[0], mask, net.flow[0], out=photo.copy(), face_area=area,
                  shade=None if net.shade is None else net.shade[0])
        if rep < 3:
            for v in times.values():
                v.clear()

    def chain(lam: float, composite, out: np.ndarray) -> None:
        """Everything the engine runs per face, in its order (:func:`smilecore.pipeline.smile`)."""
        al = align_face(facemod.refine_landmarks(photo, det), model.size)
        crop = extract_crop(photo, al)[None]
        seen = mesh.read(crop)
        net = model.run(crop, lam)
        area = facemesh.edit_region(seen.outline[0], model.size, net.flow[0])
        composite(photo, al, net.rgb[0], facemesh.painted_mask(net.mask[0], seen.teeth[0]), net.flow[0], out=out,
                  face_area=area, shade=None if net.shade is None else net.shade[0])

    # Two pairs of chains, each taking turns within its pair: λ = 1 against λ = 2 (the engine's numbers), then
    # λ = 2 against the same through the baseline composite. A chain run right after the baseline composite
    # pays for the memory that one gave back (page faults, cold caches): timed in one rotation of all three,
    # the chain after it was always the same one, and read 2-3 ms slower than the other at the same cost.
    for key in ("chain1", "chain2", "chain2_pair", "chain2_before"):
        times[key] = []
    pairs = [(("chain1", 1.0, composite_face), ("chain2", 2.0, composite_face)),
             (("chain2_pair", 2.0, composite_face), ("chain2_before", 2.0, composite_before))]
    for pair in pairs:
        for rep in range(repeats + 3):
            for key, lam, fn in (pair if rep % 2 == 0 else pair[::-1]):  # each first in turn
                timed(key, chain, lam, fn, photo.copy())
                if rep < 3:
                    times[key].clear()
    ms = {k: (statistics.median(v), float(np.percentile(v, 90))) for k, v in times.items()}
    return {"ms": ms, "prelu_nodes": sum(x.op_type == "PRelu" for x in prelu.graph.node), "side": round(det.box[2] - det.box[0]),
            "model": model.version, **({"against": other.version} if other else {})}


def to_markdown(res: dict) -> str:
    ms = res["ms"]
    lines = ["| step, one face (one thread) | median / p90 ms |", "|---|---:|"]
    for key, what in STEPS:
        lines.append(f"| {what} | {ms[key][0]:.2f} / {ms[key][1]:.2f} |")
        if key == "model2" and "against" in ms:
            lines.append(f"| smile model {res['against']} (compared), λ = 2 | {ms['against'][0]:.2f} / {ms['against'][1]:.2f} |")
    base = ["landmarks", "align", "region", "composite"]
    for lam in (1, 2):
        ours = sum(ms[k][0] for k in base + ["mesh", f"model{lam}"])
        old = sum(ms[k][0] for k in base + ["mesh_prelu", f"model{lam}"])
        before = ours - ms["composite"][0] + ms["composite_before"][0]
        nets = ms["mesh"][0] + ms[f"model{lam}"][0]
        lines.append(f"| the steps' medians summed, λ = {lam} (baseline face mesh: {old:.1f}; baseline composite: {before:.1f}) | {ours:.1f} |")
        lines.append(f"| face mesh + smile model, λ = {lam} (baseline: {ms['mesh_prelu'][0] + ms[f'model{lam}'][0]:.1f}) | {nets:.1f} |")
    for key, what in CHAINS:
        if key == "chain2_before" and "chain2_pair" in ms:
            what += f" (the engine's composite in the same turns: {ms['chain2_pair'][0]:.2f} / {ms['chain2_pair'][1]:.2f})"
        lines.append(f"| {what} | {ms[key][0]:.2f} / {ms[key][1]:.2f} |")
    lines.append("")
    lines.append(f"Model {res['model']}, a face of about {res['side']} px in a 2000 × 1500 photo; the baseline face "
                 f"mesh has {res['prelu_nodes']} `PRelu` nodes. The steps are timed "
                 "one by one, taking turns with their baselines, so each finds the caches as the step before it "
                 "left them; \"as one call\" times the engine's whole chain per face, λ = 1 and 2 taking turns, and "
                 "then λ = 2 taking turns with the baseline composite's chain.")
    return "\n".join(lines)
