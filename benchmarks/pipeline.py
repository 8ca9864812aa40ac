"""Pipeline breakdown: decode, detection, landmarks, alignment, inference, the face's outline
(face mesh and its edit region), composite, encode.

Each case runs in a fresh subprocess so its peak memory (max RSS) is its own.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

STAGES = ["decode", "detect", "landmarks", "align", "infer", "outline", "composite", "encode"]


def _one_case(label: str, width: int, height: int, faces: int, repeats: int, threads: int) -> dict:
    """Runs inside the child process."""
    import os
    import resource

    os.environ.setdefault("SMILE_THREADS", str(threads))
    import numpy as np
    from PIL import Image

    import smilecore
    from smilecore import detect as facemod
    from smilecore import facemesh
    from smilecore.align import align_face, extract_crop
    from smilecore.composite import composite_face
    from smilecore.decode import load_image
    from smilecore.encode import save_image
    from smilecore.pixels import to_rgb8

    from .photos import make_photo, scratch_folder

    tmp = scratch_folder("smile-bench-pipeline-")
    src = tmp / "in.jpg"
    Image.fromarray(make_photo(width, height, faces)).save(src, quality=92)
    model = smilecore.load_model()
    times = {s: [] for s in STAGES}
    nfaces = 0
    for rep in range(repeats + 1):  # first round warms up caches and is discarded
        t = {}
        t0 = time.perf_counter()
        img, info = load_image(src)
        arr = np.asarray(img)
        t["decode"] = time.perf_counter() - t0
        rgb8 = to_rgb8(arr)
        t0 = time.perf_counter()
        dets = facemod.detect(rgb8)
        t["detect"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        lms = [facemod.refine_landmarks(rgb8, d) for d in dets]
        t["landmarks"] = time.perf_counter() - t0
        nfaces = len(lms)
        t0 = time.perf_counter()
        als = [align_face(lm, model.size) for lm in lms]
        crops = np.stack([extract_crop(rgb8, a) for a in als]) if als else np.zeros((0, model.size, model.size, 3), np.uint8)
        t["align"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        net = model.run(crops, 1.0) if len(crops) else None
        t["infer"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        seen = facemesh.network().read(crops) if len(crops) else None
        ovals, teeth = (seen.outline, seen.teeth) if seen is not None else ([], [])
        regions = [facemesh.edit_region(o, model.size, net.flow[k]) for k, o in enumerate(ovals)]
        t["outline"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = arr.copy()
        for k, a in enumerate(als):
            composite_face(arr, a, net.rgb[k], facemesh.painted_mask(net.mask[k], teeth[k]), net.flow[k], out=out, face_area=regions[k],
                           shade=None if net.shade is None else net.shade[k])
        t["composite"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        save_image(tmp / "out.jpg", Image.fromarray(out), info)
        t["encode"] = time.perf_counter() - t0
        if rep:
            for s in STAGES:
                times[s].append(t[s])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    med = {s: statistics.median(v) * 1000 for s, v in times.items()}
    return {"label": label, "faces": faces, "found": nfaces, "ms": med, "peak_mb": peak_mb}


def run(repeats: int = 3, threads: int = 2) -> list[dict]:
    """All cases, each in its own process."""
    from .photos import SIZES

    rows = []
    for label, w, h in SIZES:
        for faces in (1, 4):
            code = (
                "import json,sys; from benchmarks.pipeline import _one_case; "
                f"print(json.dumps(_one_case({label!r}, {w}, {h}, {faces}, {repeats}, {threads})))"
            )
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return rows


def to_markdown(rows: list[dict]) -> str:
    head = "| photo | faces (found) | " + " | ".join(STAGES) + " | total excl. decode/encode | peak RSS |"
    sep = "|" + "---|" * (len(STAGES) + 4)
    lines = [head, sep]
    for r in rows:
        ms = r["ms"]
        core = sum(ms[s] for s in STAGES if s not in ("decode", "encode"))
        dom = max((s for s in STAGES), key=lambda s: ms[s])
        cells = " | ".join((f"**{ms[s]:.0f}**" if s == dom else f"{ms[s]:.0f}") for s in STAGES)
        lines.append(f"| {r['label']} | {r['faces']} ({r['found']}) | {cells} | {core:.0f} | {r['peak_mb']:.0f} MB |")
    lines.append("")
    lines.append("Median milliseconds per stage (bold: the largest), ONNX Runtime on the CPU.")
    return "\n".join(lines)
