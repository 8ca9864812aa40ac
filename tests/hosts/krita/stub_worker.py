"""A stand-in ``smile worker`` that speaks docs/worker-protocol.md without the engine.

It pretends the face is the box given by ``SMILE_STUB_BOX`` ("x0,y0,x1,y1", default: the
middle third of the image) and "edits" it by shifting those pixels 3 px right, honouring the
selection.  ``SMILE_STUB_NO_FACE=1`` makes every request answer ``no_face``.  Used to test the
Krita plug-in's plumbing when the real engine is not wanted; needs numpy and Pillow.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np
from PIL import Image


def _box(width: int, height: int) -> list:
    spec = os.environ.get("SMILE_STUB_BOX")
    if spec:
        return [int(v) for v in spec.split(",")]
    return [width // 3, height // 3, 2 * width // 3, 2 * height // 3]


def _smile(req: dict) -> dict:
    if os.environ.get("SMILE_STUB_NO_FACE") == "1":
        return {"ok": False, "error": {"code": "no_face", "message": f"no face found in {req['input']}"}}
    image = np.asarray(Image.open(req["input"]).convert("RGBA")).copy()
    h, w = image.shape[:2]
    x0, y0, x1, y1 = _box(w, h)
    mask = np.zeros((h, w), np.uint8)
    mask[y0:y1, x0:x1] = 255
    if req.get("selection"):
        mask[np.asarray(Image.open(req["selection"]).convert("L")) == 0] = 0
    shifted = np.roll(image, 3, axis=1)
    out = np.where(mask[..., None] > 0, shifted, image)
    Image.fromarray(out, "RGBA").save(req["output"])
    if req.get("mask_output"):
        Image.fromarray(mask, "L").save(req["mask_output"])
    face = {"index": 0, "box": [x0, y0, x1, y1], "score": 1.0, "edited": bool(mask.any())}
    return {"ok": True, "output": req["output"], "mask_output": req.get("mask_output"),
            "faces": [face], "timings": {"stub": 0.0}}


def main() -> int:
    print(json.dumps({"event": "ready", "protocol": 1, "version": "stub", "model": "stub"}), flush=True)
    for line in sys.stdin:
        try:
            req = json.loads(line)
        except ValueError:
            print(json.dumps({"id": None, "ok": False, "error": {"code": "bad_request", "message": "not JSON"}}), flush=True)
            continue
        rid = req.get("id")
        cmd = req.get("cmd")
        if cmd == "quit":
            print(json.dumps({"id": rid, "ok": True, "bye": True}), flush=True)
            return 0
        if cmd == "hello":
            reply = {"ok": True, "protocol": 1, "version": "stub", "model": "stub"}
        elif cmd == "smile":
            reply = _smile(req)
        else:
            reply = {"ok": False, "error": {"code": "bad_request", "message": f"unknown cmd {cmd!r}"}}
        reply["id"] = rid
        print(json.dumps(reply), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
