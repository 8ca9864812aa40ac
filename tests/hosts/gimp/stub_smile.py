#!/usr/bin/env python3
"""A stand-in for the `smile` program, for testing the GIMP plug-in without the engine.

`stub_smile.py worker` speaks docs/worker-protocol.md with the standard library only.  Its
"face" is the centre third of the image: those pixels are inverted (where the selection
allows), everything else is copied.  A `smile` request with strength 3.25 (or SMILE_STUB=crash)
makes it die with exit status 3; SMILE_STUB=noface makes it answer no_face.  It reads only the filter-0 PNGs the
plug-in writes.  Its "model" has the strength range STRENGTH_RANGE (not the bundled model's), so
a dialog's slider built from the greeting starts at 1.5, where the model allows 1.0 no more.
"""
import json
import os
import struct
import sys
import zlib

STRENGTH_RANGE = [1.5, 3.5]


def read_png(path):
    data = open(path, "rb").read()
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        payload = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", payload)
        elif kind == b"IDAT":
            idat += payload
        pos += 12 + length
    width, height, _, color_type, *_ = header
    channels = {0: 1, 4: 2, 2: 3, 6: 4}[color_type]
    raw = zlib.decompress(idat)
    stride = width * channels
    rows = [raw[y * (stride + 1):(y + 1) * (stride + 1)] for y in range(height)]
    assert all(row[0] == 0 for row in rows), "stub reads filter-0 PNGs only"
    return width, height, channels, bytearray(b"".join(row[1:] for row in rows))


def write_png(path, width, height, channels, pixels):
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    stride = width * channels
    raw = b"".join(b"\x00" + bytes(pixels[y * stride:(y + 1) * stride]) for y in range(height))

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    with open(path, "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def smile(request):
    if os.environ.get("SMILE_STUB") == "crash" or request.get("strength") == 3.25:
        print("stub engine: simulated crash", file=sys.stderr, flush=True)
        os._exit(3)
    width, height, channels, pixels = read_png(request["input"])
    selection = read_png(request["selection"])[3] if request.get("selection") else None
    x0, x1, y0, y1 = width // 3, 2 * width // 3, height // 3, 2 * height // 3
    mask = bytearray(width * height)
    for y in range(y0, y1):
        for x in range(x0, x1):
            if selection is None or selection[y * width + x] > 0:
                mask[y * width + x] = 255
    if os.environ.get("SMILE_STUB") == "noface" or not any(mask):
        return {"ok": False, "error": {"code": "no_face", "message": "no face found in " + request["input"]}}
    for i, m in enumerate(mask):
        if m:
            for c in range(min(channels, 3)):
                pixels[i * channels + c] = 255 - pixels[i * channels + c]
    write_png(request["output"], width, height, channels, pixels)
    if request.get("mask_output"):
        write_png(request["mask_output"], width, height, 1, mask)
    box = [x0, y0, x1, y1]
    return {"ok": True, "output": request["output"], "mask_output": request.get("mask_output"),
            "faces": [{"index": 0, "box": box, "score": 1.0, "edited": True}], "timings": {}}


def main():
    if sys.argv[1:] != ["worker"]:
        print("usage: stub_smile.py worker", file=sys.stderr)
        return 2
    print(json.dumps({"event": "ready", "protocol": 1, "version": "0.0-stub", "model": "stub",
                      "strength_range": STRENGTH_RANGE, "crop_size": 256}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("cmd") == "quit":
            print(json.dumps({"id": request.get("id"), "ok": True, "bye": True}), flush=True)
            return 0
        reply = smile(request) if request.get("cmd") == "smile" else {"ok": True, "protocol": 1}
        reply["id"] = request.get("id")
        print(json.dumps(reply), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
