"""Property-based fuzzing of decoding and of the pipeline's entry (issue #9).

Random bytes, valid files with mutated bytes, PNG/JPEG headers with random fields, odd
arrays and odd arguments go into ``load_image`` + ``smile``: the only exceptions allowed
out are :class:`~smilecore.errors.SmileError` subclasses with a one-line message.
Bounded: a fixed number of examples per test, no deadline, a small pixel limit so a
mutated header can never make the decoder allocate much.
"""
from __future__ import annotations

import io
import os
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import smilecore
from corpus import avif_writable, ftyp_box, heif_writable, portrait
from smilecore.errors import SmileError
from smilecore.decode import load_image

#: Pixel limit for fuzzed files: a mutated header cannot make the decoder allocate more than a few MB.
FUZZ_MAX_PIXELS = 1_000_000
#: Phone formats (HEIF through the optional pillow-heif, AVIF through Pillow's codec) when this installation has them.
PHONE_SUFFIXES = [".heic"] * heif_writable() + [".avif"] * avif_writable()
SUFFIXES = [".png", ".jpg", ".tif", ".webp", ".bmp", *PHONE_SUFFIXES]
#: Examples per test: a fixed, reproducible set in CI; SMILE_FUZZ_EXAMPLES=5000 fuzzes longer with fresh random examples.
EXAMPLES = int(os.environ.get("SMILE_FUZZ_EXAMPLES", "0") or 0)
FUZZ = settings(max_examples=EXAMPLES or 200, deadline=None, derandomize=not EXAMPLES, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
FUZZ_SLOW = settings(FUZZ, max_examples=max(25, EXAMPLES // 8))

_TMP = tempfile.TemporaryDirectory(prefix="smile-fuzz-")
TMP = Path(_TMP.name)


def _encode(img: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def _seeds() -> dict[str, bytes]:
    """Small valid files of every readable kind, the material the mutations start from."""
    face = Image.fromarray(portrait(64))
    exif = Image.Exif()
    exif[0x0112] = 6
    import cv2

    ok, png16 = cv2.imencode(".png", (np.asarray(face).astype(np.uint16) * 257)[:, :, ::-1].copy())
    assert ok
    phone = {}
    if heif_writable():
        from smilecore import heif

        heif.require("fuzz")
        phone[".heic"] = _encode(face, "HEIF", quality=60)
        phone["grid.heic"] = _encode(face, "HEIF", quality=60, tile_size=32)  # (a grid of 4 tiles)
    if avif_writable():
        phone[".avif"] = _encode(face, "AVIF", quality=60, speed=9)
        phone["la.avif"] = _encode(face.convert("LA"), "AVIF", quality=60, speed=9)
    return {
        **phone,
        ".png": _encode(face, "PNG"),
        ".jpg": _encode(face, "JPEG", quality=80, exif=exif.tobytes()),
        ".tif": _encode(face, "TIFF"),
        ".webp": _encode(face, "WEBP", quality=80),
        ".bmp": _encode(face, "BMP"),
        "16.png": png16.tobytes(),
        "p.png": _encode(face.convert("P"), "PNG"),
        "la.png": _encode(face.convert("LA"), "PNG"),
        "cmyk.jpg": _encode(face.convert("CMYK"), "JPEG"),
        "prog.jpg": _encode(face, "JPEG", progressive=True),
    }


SEEDS = _seeds()


@pytest.fixture(scope="module")
def model(fixture_models):
    return smilecore.load_model(fixture_models["identity"])


def _suffix(key: str) -> str:
    return "." + key.rsplit(".", 1)[-1]


def check_bytes(data: bytes, suffix: str, model) -> None:
    """The property: reading and smiling ``data`` raises nothing but a one-line SmileError."""
    path = TMP / f"fuzz{suffix}"
    path.write_bytes(data)
    try:
        image, _info = load_image(path, max_pixels=FUZZ_MAX_PIXELS)
    except SmileError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
        return
    try:
        smilecore.smile(image, model=model, max_pixels=FUZZ_MAX_PIXELS)
    except SmileError as exc:
        assert str(exc) and "\n" not in str(exc)
    assert path.read_bytes() == data  # the input is never touched


@FUZZ
@given(data=st.binary(max_size=4096), suffix=st.sampled_from(SUFFIXES))
def test_random_bytes(data, suffix, model):
    check_bytes(data, suffix, model)


_MAGICS = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"BM", b"GIF89a",
           ftyp_box(b"heic", b"mif1", b"heic"), ftyp_box(b"avif", b"mif1", b"avif"), ftyp_box(b"mif1", b"mif1"),
           ftyp_box(b"msf1", b"msf1", b"hevc"), ftyp_box(b"isom", b"isom", b"mp41")]


@FUZZ
@given(magic=st.sampled_from(_MAGICS), tail=st.binary(max_size=2048), suffix=st.sampled_from(SUFFIXES))
def test_magic_number_then_garbage(magic, tail, suffix, model):
    check_bytes(magic + tail, suffix, model)


@st.composite
def mutated_seed(draw):
    key = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[key])
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        # mutations concentrate on the headers, where decoders make their decisions
        pos = draw(st.one_of(st.integers(0, min(len(data), 300)), st.integers(0, len(data)))) if data else 0
        if kind == "flip" and pos < len(data):
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and pos < len(data):
            data[pos] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80, 0x01]))
        elif kind == "cut":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 64))]
    return bytes(data), _suffix(key)


@FUZZ
@given(case=mutated_seed())
def test_mutated_valid_files(case, model):
    data, suffix = case
    check_bytes(data, suffix, model)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


@FUZZ
@given(
    width=st.one_of(st.integers(0, 3), st.integers(0, 2000), st.integers(0, 2**31)),
    height=st.one_of(st.integers(0, 3), st.integers(0, 2000), st.integers(0, 2**31)),
    depth=st.sampled_from([1, 2, 4, 8, 16, 0, 3, 255]),
    colour=st.sampled_from([0, 2, 3, 4, 6, 1, 7]),
    interlace=st.sampled_from([0, 1, 2]),
    rows=st.binary(max_size=512),
)
def test_png_header_fields(width, height, depth, colour, interlace, rows, model):
    """Valid CRCs, random IHDR fields: the decoder's own checks, not the CRC, must reject them."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace)
    plte = _chunk(b"PLTE", bytes(range(48))) if colour == 3 else b""
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + plte + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b"")
    check_bytes(data, ".png", model)


@FUZZ
@given(
    width=st.one_of(st.integers(0, 3), st.integers(0, 65535)),
    height=st.one_of(st.integers(0, 3), st.integers(0, 65535)),
    components=st.sampled_from([0, 1, 2, 3, 4, 5, 255]),
    precision=st.sampled_from([8, 12, 16, 0]),
)
def test_jpeg_header_fields(width, height, components, precision, model):
    data = bytearray(SEEDS[".jpg"])
    i = 2
    while i < len(data) - 9:  # find SOF0 and rewrite its fields
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if data[i + 1] in (0xC0, 0xC2):
            data[i + 4] = precision
            struct.pack_into(">HH", data, i + 5, height, width)
            data[i + 9] = components
            break
        i += 2 + length
    check_bytes(bytes(data), ".jpg", model)


@pytest.mark.skipif(not PHONE_SUFFIXES, reason="neither pillow-heif nor Pillow's AVIF codec is installed")
@FUZZ
@given(
    width=st.one_of(st.integers(0, 3), st.integers(0, 4000), st.integers(0, 2**32 - 1)),
    height=st.one_of(st.integers(0, 3), st.integers(0, 4000), st.integers(0, 2**32 - 1)),
    suffix=st.sampled_from(PHONE_SUFFIXES or [".heic"]),
)
def test_heif_and_avif_claimed_sizes(width, height, suffix, model):
    """A HEIF/AVIF whose ispe box claims any size: above the pixel limit it is refused as too large
    before a decoder runs (libavif alone would call a 60000 x 60000 header corrupt), else read or refused in one line."""
    from corpus import with_claimed_size
    from smilecore.errors import ImageTooLargeError

    data = with_claimed_size(SEEDS[suffix], width, height)
    if width * height > FUZZ_MAX_PIXELS:
        path = TMP / f"fuzz{suffix}"
        path.write_bytes(data)
        with pytest.raises(ImageTooLargeError):
            load_image(path, max_pixels=FUZZ_MAX_PIXELS)
    else:
        check_bytes(data, suffix, model)


_DTYPES = [np.uint8, np.uint16, np.int8, np.int32, np.float32, np.float64, np.bool_, np.complex64, object]
_SHAPES = [(0, 0), (0, 5, 3), (5, 0), (1, 1), (1, 1, 3), (7, 9, 2), (7, 9, 5), (8,), (), (4, 4, 3, 1), (3, 40, 40), (40, 40, 0)]


@FUZZ
@given(dtype=st.sampled_from(_DTYPES), shape=st.sampled_from(_SHAPES), transpose=st.booleans())
def test_odd_arrays(dtype, shape, transpose, model):
    arr = np.zeros(shape, dtype=dtype)
    if transpose and arr.ndim >= 2:
        arr = arr.swapaxes(0, 1)  # not C-contiguous
    try:
        smilecore.smile(arr, model=model)
    except SmileError as exc:
        assert str(exc) and "\n" not in str(exc)


@FUZZ
@given(mode=st.sampled_from(["1", "L", "P", "RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV", "I", "F", "I;16", "LA", "PA", "RGBX", "RGBa", "La"]),
       w=st.integers(1, 40), h=st.integers(1, 40))
def test_pil_images_of_every_mode(mode, w, h, model):
    img = Image.new(mode, (w, h))
    try:
        result = smilecore.smile(img, model=model)
    except SmileError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:  # pragma: no cover - a 40 px blank image has no face
        assert result.image.size == (w, h)


_STRENGTHS = [0.0, 1.0, -1.0, 2.5, -2.0, 4.0, 4.000001, -1e308, 1e308, float("nan"), float("inf"), float("-inf"), "1.5", "lots", np.float32(1.0)]
_FACES = ["all", "largest", "", "ALL", "some", [], [0], [-1], [99], [0, 0], [0.5], ["0"], (0,), np.array([0])]
_MIN_FACES = [None, -1, 0, 1, 10**9]
_SELECTIONS = [None, np.zeros(3), np.zeros((3, 3)), np.full((256, 256), np.nan), np.ones((256, 256, 3), np.uint8),
               np.ones((256, 256, 1), np.float32), np.full((256, 256), -5.0), np.ones((256, 256), bool), np.ones((256, 256), np.uint16) * 65535]


@FUZZ_SLOW
@given(strength=st.sampled_from(_STRENGTHS), faces=st.sampled_from(_FACES), min_face=st.sampled_from(_MIN_FACES),
       selection=st.sampled_from(_SELECTIONS))
def test_odd_argument_values(strength, faces, min_face, selection, model, face_image):
    """Arguments of the documented types with odd values: a one-line SmileError or a result, nothing else."""
    try:
        result = smilecore.smile(face_image, strength=strength, faces=faces, min_face=min_face, selection=selection, model=model)
    except SmileError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert result.image.shape == face_image.shape and result.image.dtype == face_image.dtype


@pytest.fixture(scope="module")
def face_image() -> np.ndarray:
    return portrait(256)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
_FIELDS = ["id", "cmd", "input", "output", "strength", "faces", "min_face", "selection", "mask_output"]


@st.composite
def worker_request(draw):
    req = draw(st.dictionaries(st.sampled_from(_FIELDS), _JSON, max_size=len(_FIELDS)))
    if draw(st.booleans()):
        req["cmd"] = draw(st.sampled_from(["hello", "smile", "detect", "Smile", ""]))
    if req.get("cmd") in ("smile", "detect") and draw(st.booleans()):
        req["input"] = draw(st.sampled_from([str(TMP / "missing.png"), str(TMP), "", "relative.png"]))
    req.pop("output", None) if draw(st.booleans()) else req.setdefault("output", str(TMP / "fuzz-out" / "o.png"))
    return req


@settings(FUZZ, max_examples=max(60, EXAMPLES // 3))
@given(req=worker_request())
def test_worker_requests(req, model):
    """Random JSON requests: always one reply, never an internal error, never a crash."""
    import json

    from smile_cli.bridge.worker import WorkerSession

    session = WorkerSession(None)
    session.model = model
    reply = session.handle_line(json.dumps(req).encode())
    assert reply["ok"] in (True, False)
    if not reply["ok"]:
        assert reply["error"]["code"] != "internal", (req, reply)
        assert "\n" not in reply["error"]["message"]
    json.dumps(reply, allow_nan=False)  # always serialisable
