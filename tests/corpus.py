"""A corpus of odd and hostile photo files, generated on the spot (nothing is downloaded).

Every case is made from the public-domain NASA astronaut portrait (made neutral: tests/portrait.py),
from synthetic pixels, or from hand-written bytes.  :func:`build_corpus` writes them all into a
folder and returns one :class:`Case` per file, saying what Smile must do with it:

* ``ok``: a result with the promised size, mode, bit depth, alpha, ICC profile and EXIF;
* ``ok_or_no_face``: either of the two (a profile, a face cut by the border...);
* ``no_face`` (exit 3), ``bad_input`` (exit 4), ``too_large`` (exit 5): a one-line error.

Run ``python tests/corpus.py DIR`` to write the corpus into DIR and list it.
"""
from __future__ import annotations

import io
import struct
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

#: Exit status expected for each outcome (see smilecore/errors.py).
EXIT_FOR = {"ok": 0, "no_face": 3, "bad_input": 4, "too_large": 5}
#: Error codes (smilecore.errors ``code``) expected for each failing outcome.
CODE_FOR = {"no_face": "no_face", "bad_input": "bad_input", "too_large": "too_large"}

#: Side of the base portrait: small keeps detection fast, the face (~45 px) is still found.
BASE = 256
#: EXIF tag written into the EXIF cases so that their preservation can be checked.
EXIF_MAKE = 0x010F
MAKE_VALUE = "SmileCorpus"


@dataclass(frozen=True)
class Case:
    """One corpus file and what Smile must do with it."""

    name: str  #: file name inside the corpus folder
    expect: str  #: "ok", "ok_or_no_face", "no_face", "bad_input" or "too_large"
    what: str  #: one-line description
    size: tuple[int, int] | None = None  #: upright (width, height) of a result
    modes: tuple[str, ...] = ()  #: acceptable modes of the loaded image and of the result (ImageInfo.mode for 16-bit)
    depth: int = 8  #: bits per sample of the result
    alpha: bool = False  #: the result must keep an alpha channel
    icc: bytes | None = None  #: ICC profile the result must carry
    exif_make: bool = False  #: the result must keep the EXIF Make tag (and orientation 1)
    min_edited: int = 1  #: faces that must be edited when the outcome is a result
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def may_succeed(self) -> bool:
        """True if a result (exit 0) is an acceptable outcome."""
        return self.expect in ("ok", "ok_or_no_face")

    @property
    def may_fail_with(self) -> set[str]:
        """Error codes that are acceptable outcomes."""
        if self.expect == "ok":
            return set()
        if self.expect == "ok_or_no_face":
            return {"no_face"}
        return {CODE_FOR[self.expect]}


# --------------------------------------------------------------------------- pixels


def portrait(side: int = BASE) -> np.ndarray:
    """The astronaut (public domain), made neutral (tests/portrait.py), reduced to ``side`` x ``side``, RGB uint8."""
    from portrait import neutral_astronaut

    return np.asarray(Image.fromarray(np.array(neutral_astronaut())).resize((side, side), Image.LANCZOS))


def _alpha_for(h: int, w: int) -> np.ndarray:
    """Opaque over the face area, a transparent band at the bottom and a half-transparent one at the right."""
    a = np.full((h, w), 255, np.uint8)
    a[h - 24 :, :] = 0
    a[:, w - 20 :] = 128
    return a


def _png(img: Image.Image, **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **params)
    return buf.getvalue()


def _jpeg(img: Image.Image, **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, **params)
    return buf.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def png_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A ~60-byte PNG whose header claims ``width`` x ``height`` RGB pixels (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\x00")) + _png_chunk(b"IEND", b"")


def jpeg_with_size(data: bytes, width: int, height: int) -> bytes:
    """Patch the SOF marker of a JPEG so it claims ``width`` x ``height`` (a JPEG bomb header)."""
    b = bytearray(data)
    i = 2
    while i < len(b) - 9:
        if b[i] != 0xFF:
            raise ValueError("not a JPEG marker stream")
        marker = b[i + 1]
        length = struct.unpack(">H", b[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            struct.pack_into(">HH", b, i + 5, height, width)
            return bytes(b)
        i += 2 + length
    raise ValueError("no SOF marker")


def _exif(orientation: int | None = None, make: bool = True) -> Image.Exif:
    exif = Image.Exif()
    if make:
        exif[EXIF_MAKE] = MAKE_VALUE
    if orientation is not None:
        exif[0x0112] = orientation
    return exif


#: How to store an upright picture so that EXIF orientation N shows it upright again
#: (the inverse of what ``ImageOps.exif_transpose`` applies).
_STORE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def srgb_profile() -> bytes:
    """An sRGB ICC profile made by LittleCMS (no file needed)."""
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _write_16bit_png(path: Path, arr: np.ndarray) -> None:
    import cv2

    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = arr[:, :, ::-1]
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, [2, 1, 0, 3]]
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(arr))
    assert ok
    path.write_bytes(buf.tobytes())


# --------------------------------------------------------------------------- the corpus


def build_corpus(folder: str | Path) -> list[Case]:
    """Write every corpus file into ``folder`` (created if needed); return their cases."""
    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    face = portrait()
    rgb = Image.fromarray(face)
    h, w = face.shape[:2]
    cases: list[Case] = []

    def add(name: str, data: bytes | None, expect: str, what: str, **kw) -> None:
        if data is not None:
            (d / name).write_bytes(data)
        cases.append(Case(name, expect, what, **kw))

    jpeg = _jpeg(rgb)
    png = _png(rgb)

    # -- files that are not (whole) images
    add("empty.jpg", b"", "bad_input", "zero bytes")
    add("truncated.jpg", jpeg[: len(jpeg) // 2], "bad_input", "JPEG cut in the middle of its data")
    add("truncated.png", png[: len(png) // 2], "bad_input", "PNG cut in the middle of its data")
    add("header-only.png", png[:30], "bad_input", "PNG signature and a partial IHDR only")
    add("text.jpg", b"This is not a photo, just text renamed to .jpg\n" * 20, "bad_input", "text file renamed .jpg")
    bad_crc = bytearray(png)
    idat = bad_crc.index(b"IDAT")
    for k in range(idat + 40, idat + 60):  # scramble compressed data: zlib or CRC error
        bad_crc[k] ^= 0x5A
    add("corrupt-data.png", bytes(bad_crc), "bad_input", "PNG with scrambled IDAT bytes")
    add("float.tif", None, "bad_input", "32-bit floating point TIFF (mode F)")
    Image.fromarray(face[:, :, 0].astype(np.float32) / 255.0, "F").save(d / "float.tif")

    # -- bombs and limits
    icc_bomb = _png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(b"\x00" * 20_000_000, 9))
    add("icc-bomb.png", png[:33] + icc_bomb + png[33:], "bad_input", "PNG whose ICC profile inflates to 20 MB (a metadata bomb)")
    add("bomb.png", png_bomb(), "too_large", "PNG header claiming 50000 x 50000 pixels")
    add("bomb.jpg", jpeg_with_size(jpeg, 60_000, 60_000), "too_large", "JPEG header claiming 60000 x 60000 pixels")

    # -- colour modes and depths
    add("cmyk.jpg", _jpeg(rgb.convert("CMYK")), "ok", "CMYK JPEG", size=(w, h), modes=("CMYK",))
    cmyk = np.dstack([255 - face, np.full((h, w), 60, np.uint8)])  # a real black (K) channel, unlike PIL's RGB->CMYK
    cmyk[..., :3] = np.clip(cmyk[..., :3].astype(int) - 60, 0, 255)
    add("cmyk-black.jpg", _jpeg(Image.fromarray(cmyk, "CMYK")), "ok", "CMYK JPEG with a black (K) channel",
        size=(w, h), modes=("CMYK",))
    add("rgb16.tif", None, "ok", "16-bit RGB TIFF", size=(w, h), modes=("RGB;16",), depth=16)
    import cv2

    cv2.imwrite(str(d / "rgb16.tif"), (face.astype(np.uint16) * 257)[:, :, ::-1].copy())
    add("rgb16.png", None, "ok", "16-bit RGB PNG", size=(w, h), modes=("RGB;16",), depth=16)
    _write_16bit_png(d / "rgb16.png", face.astype(np.uint16) * 257)
    add("gray16.png", None, "ok", "16-bit grayscale PNG", size=(w, h), modes=("L;16",), depth=16)
    gray = np.asarray(rgb.convert("L"))
    _write_16bit_png(d / "gray16.png", gray.astype(np.uint16) * 257)
    add("rgba16.png", None, "ok", "16-bit RGBA PNG", size=(w, h), modes=("RGBA;16",), depth=16, alpha=True)
    rgba16 = np.dstack([face, _alpha_for(h, w)]).astype(np.uint16) * 257
    _write_16bit_png(d / "rgba16.png", rgba16)
    la16 = np.dstack([gray.astype(np.uint16) * 257, _alpha_for(h, w).astype(np.uint16) * 257]).astype(">u2")
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 4, 0, 0, 0)  # written by hand: neither PIL nor OpenCV writes 16-bit grey + alpha
    rows = b"".join(b"\x00" + row.tobytes() for row in la16)
    add("la16.png", b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(rows)) + _png_chunk(b"IEND", b""),
        "ok", "16-bit grayscale + alpha PNG", size=(w, h), modes=("LA;16",), depth=16, alpha=True)
    pal = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    add("palette.png", _png(pal), "ok", "palette (P) PNG", size=(w, h), modes=("P", "RGB"))
    pal_t = pal.copy()
    pal_t.info["transparency"] = int(np.asarray(pal)[-1, -1])  # one palette entry transparent
    add("palette-transparent.png", _png(pal_t, transparency=pal_t.info["transparency"]), "ok",
        "palette PNG with a transparent entry", size=(w, h), modes=("P", "PA", "RGBA"), alpha=True)
    keyed = np.maximum(face, 1)  # no pure black left in the picture: black (0) is the transparent colour key
    keyed[h - 24 :, :] = 0
    add("rgb-colour-key.png", _png(Image.fromarray(keyed), transparency=(0, 0, 0)), "ok",
        "RGB PNG with a tRNS colour key (black is transparent)", size=(w, h), modes=("RGB", "RGBA"), alpha=True)
    add("gray-colour-key.png", _png(Image.fromarray(keyed[:, :, 1]), transparency=0), "ok",
        "grayscale PNG with a tRNS colour key (0 is transparent)", size=(w, h), modes=("L", "LA"), alpha=True)
    la = Image.merge("LA", [rgb.convert("L"), Image.fromarray(_alpha_for(h, w))])
    add("la.png", _png(la), "ok", "grayscale + alpha (LA) PNG", size=(w, h), modes=("LA",), alpha=True)
    rgba = Image.fromarray(np.dstack([face, _alpha_for(h, w)]), "RGBA")
    add("rgba.png", _png(rgba), "ok", "RGBA PNG with transparent and half-transparent bands", size=(w, h), modes=("RGBA",), alpha=True)
    add("gray.jpg", _jpeg(rgb.convert("L")), "ok", "grayscale JPEG", size=(w, h), modes=("L",))
    add("bilevel.png", _png(rgb.convert("1")), "ok_or_no_face", "1-bit black and white PNG", size=(w, h), modes=("1", "L"))
    add("multipage.tif", None, "ok", "two-page TIFF (the first page is used)", size=(w, h), modes=("RGB",))
    rgb.save(d / "multipage.tif", save_all=True, append_images=[Image.new("RGB", (w, h), (0, 0, 255))])
    add("portrait.webp", None, "ok", "lossy WebP", size=(w, h), modes=("RGB",))
    rgb.save(d / "portrait.webp", quality=90)
    add("rgba.webp", None, "ok", "lossy WebP with alpha", size=(w, h), modes=("RGBA",), alpha=True)
    rgba.save(d / "rgba.webp", quality=90)
    add("mpo.jpg", None, "ok", "MPO (multi-picture JPEG, as cameras write)", size=(w, h), modes=("RGB",))
    rgb.save(d / "mpo.jpg", format="MPO", save_all=True, append_images=[Image.fromarray(face[:, ::-1].copy())])
    add("portrait.bmp", None, "ok", "BMP", size=(w, h), modes=("RGB",))
    rgb.save(d / "portrait.bmp")

    # -- metadata
    upright = rgb.crop((0, 0, w, 200))  # not square, so a wrong rotation changes the size
    for o, how in _STORE_FOR_ORIENTATION.items():
        stored = upright.transpose(how)
        add(f"orientation-{o}.jpg", _jpeg(stored, exif=_exif(o).tobytes()), "ok", f"EXIF orientation {o}",
            size=upright.size, modes=("RGB",), exif_make=True)
    add("orientation-6.png", _png(upright.transpose(_STORE_FOR_ORIENTATION[6]), exif=_exif(6).tobytes()), "ok",
        "PNG with EXIF orientation 6 (eXIf chunk)", size=upright.size, modes=("RGB",), exif_make=True)
    add("bad-orientation.jpg", _jpeg(upright, exif=_exif(9).tobytes()), "ok", "EXIF orientation 9 (invalid: means upright)",
        size=upright.size, modes=("RGB",), exif_make=True)
    add("garbage-exif.jpg", None, "ok", "JPEG whose EXIF block is garbage", size=(w, h), modes=("RGB",))
    (d / "garbage-exif.jpg").write_bytes(_with_app1(jpeg, b"Exif\x00\x00MM\x00\x2a\xff\xff\xff\xf0garbage"))
    icc = srgb_profile()
    add("icc.jpg", _jpeg(rgb, icc_profile=icc), "ok", "JPEG with an sRGB ICC profile", size=(w, h), modes=("RGB",), icc=icc)
    add("icc.png", _png(rgb, icc_profile=icc), "ok", "PNG with an sRGB ICC profile", size=(w, h), modes=("RGB",), icc=icc)
    add("odd name ü 😀.jpg", jpeg, "ok", "spaces and non-ASCII characters in the file name", size=(w, h), modes=("RGB",))

    # -- geometry
    add("1x1.png", _png(Image.new("RGB", (1, 1), (200, 150, 120))), "no_face", "a single pixel")
    add("wide.png", _png(Image.fromarray(np.tile(face[100:108], (1, 16, 1)))), "no_face", "4096 x 8 strip")
    add("tall.png", _png(Image.fromarray(np.tile(face[:, 100:108], (16, 1, 1)))), "no_face", "8 x 4096 strip")
    yy, xx = np.mgrid[0:200, 0:300]
    grad = np.dstack([xx * 255 // 299, yy * 255 // 199, np.full_like(xx, 128)]).astype(np.uint8)
    add("no-face.png", _png(Image.fromarray(grad)), "no_face", "a smooth gradient, no face")
    tiny = Image.new("RGB", (640, 480), (90, 110, 130))
    tiny.paste(Image.fromarray(portrait(64)), (300, 200))
    add("tiny-face.png", _png(tiny), "no_face", "a 64 px portrait (face ~12 px) in a 640 x 480 photo")
    add("face-at-edge.png", _png(Image.fromarray(np.ascontiguousarray(face[:, 80:]))), "ok",
        "face touching the left border (its crop region extends outside)", size=(w - 80, h), modes=("RGB",))
    add("face-cut.png", _png(Image.fromarray(np.ascontiguousarray(face[:, 108:]))), "ok_or_no_face",
        "face half outside the left border", size=(w - 108, h), modes=("RGB",))
    profile = rgb.rotate(80, resample=Image.BICUBIC, expand=True, fillcolor=(0, 0, 0))
    add("rotated-profile.png", _png(profile), "ok_or_no_face", "face turned 80 degrees (stands in for a profile)",
        size=profile.size, modes=("RGB",))
    import cv2

    # A profile stand-in (the only portrait tests may use is the frontal astronaut): the face turned
    # about the vertical axis by a perspective warp that squeezes its far side, as a ~60 degree yaw does.
    src_quad = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst_quad = np.float32([[0, 0], [w * 0.45, h * 0.14], [w * 0.45, h * 0.86], [0, h]])
    yawed = cv2.warpPerspective(face, cv2.getPerspectiveTransform(src_quad, dst_quad), (w, h),
                                flags=cv2.INTER_AREA, borderMode=cv2.BORDER_CONSTANT, borderValue=(40, 40, 40))
    add("yawed-profile.png", _png(Image.fromarray(yawed)), "ok_or_no_face",
        "face turned away (perspective squeeze of its far side, a synthetic near-profile)", size=(w, h), modes=("RGB",))
    many = _tile(face)
    add("many-faces.png", _png(Image.fromarray(many)), "ok", "four faces (2 x 2 tiles)", size=(2 * w, 2 * h),
        modes=("RGB",), min_edited=2)
    _phone_cases(add, d, face, jpeg)
    return cases


#: The corpus has HEIF (HEIC) cases when pillow-heif is installed, AVIF ones when Pillow has its codec.
def heif_writable() -> bool:
    try:
        import pillow_heif  # noqa: F401
    except ImportError:
        return False
    return True


def avif_writable() -> bool:
    from PIL import features

    return bool(features.check("avif"))


def _heif_bytes(img, **params) -> bytes:
    """``img`` as a HEIF (HEIC) file (pillow-heif; ``tile_size`` makes a grid, as phones write)."""
    from smilecore import heif

    heif.require("corpus")
    buf = io.BytesIO()
    img.save(buf, "HEIF", quality=90, **params)
    return buf.getvalue()


def _avif_bytes(img, **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "AVIF", quality=90, speed=9, **params)
    return buf.getvalue()


def ftyp_box(major: bytes, *compatible: bytes) -> bytes:
    """An ISO BMFF ``ftyp`` box (what HEIF, AVIF and MP4 files start with)."""
    body = b"ftyp" + major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return struct.pack(">I", len(body) + 4) + body


def with_claimed_size(data: bytes, width: int, height: int) -> bytes:
    """A HEIF or AVIF file whose primary image's ``ispe`` box claims ``width`` x ``height`` (a bomb header)."""
    b = bytearray(data)
    assert b.count(b"ispe") == 1, "one ispe property expected (no thumbnail, no grid)"
    struct.pack_into(">II", b, b.index(b"ispe") + 8, width, height)
    return bytes(b)


def _phone_cases(add, d: Path, face: np.ndarray, jpeg: bytes) -> None:
    """HEIF (HEIC) and AVIF files as phones write them, and damaged or disguised ones."""
    h, w = face.shape[:2]
    rgb = Image.fromarray(face)
    upright = rgb.crop((0, 0, w, 200))
    rgba = Image.fromarray(np.dstack([face, _alpha_for(h, w)]), "RGBA")
    grey = rgb.convert("L")
    blue = Image.new("RGB", (w, h), (20, 40, 200))
    kinds = []
    if heif_writable():
        kinds.append(("heic", "HEIF", _heif_bytes))
    if avif_writable():
        kinds.append(("avif", "AVIF", _avif_bytes))
    for ext, fmt, encode in kinds:
        whole = encode(rgb)
        add(f"portrait.{ext}", whole, "ok", f"{fmt} photo", size=(w, h), modes=("RGB",))
        for cut, n, where in (("header", 40, "in its meta box"), ("data", len(whole) // 2, "in the middle of its image data"),
                              ("last-byte", len(whole) - 1, "by its last byte")):
            add(f"truncated-{cut}.{ext}", whole[:n], "bad_input", f"{fmt} cut {where} ({n} bytes)")
        for brand in (b"heic", b"avif", b"mif1"):
            add(f"ftyp-{brand.decode()}-garbage.{ext}", ftyp_box(brand, b"mif1", brand) + bytes(range(256)) * 8, "bad_input",
                f"an ftyp box of brand {brand.decode()} and then garbage, named .{ext}")
        add(f"bomb.{ext}", with_claimed_size(whole, 60_000, 60_000), "too_large", f"{fmt} whose ispe claims 60000 x 60000 pixels")
        add(f"rgba.{ext}", encode(rgba), "ok", f"{fmt} with alpha (lossy alpha plane)", size=(w, h), modes=("RGBA",), alpha=True)
        add(f"grey.{ext}", encode(grey), "ok", f"monochrome (grey) {fmt}", size=(w, h), modes=("L",))
        stored = upright.transpose(_STORE_FOR_ORIENTATION[6])
        add(f"rotated.{ext}", encode(stored, exif=_exif(6).tobytes()), "ok",
            f"{fmt} stored turned a quarter: an irot box (and EXIF orientation 6) right it",
            size=upright.size, modes=("RGB",), exif_make=True)
        mirrored = upright.transpose(_STORE_FOR_ORIENTATION[2])
        add(f"mirrored.{ext}", encode(mirrored, exif=_exif(2).tobytes()), "ok", f"{fmt} stored mirrored: an imir box rights it",
            size=upright.size, modes=("RGB",), exif_make=True)
        add(f"jpeg-named.{ext}", jpeg, "ok", f"a JPEG named .{ext}", size=(w, h), modes=("RGB",))
        add(f"{ext}-named.jpg", whole, "ok", f"{fmt} bytes named .jpg", size=(w, h), modes=("RGB",))
    if heif_writable():
        import pillow_heif

        add("grid.heic", _heif_bytes(rgb, tile_size=128), "ok", "HEIC stored as a grid of 128 px tiles, as phones write",
            size=(w, h), modes=("RGB",))
        add("burst.heic", _heif_bytes(blue, save_all=True, append_images=[rgb, blue], primary_index=1), "ok",
            "HEIF collection of three images (a burst) whose primary is the second: the primary is used",
            size=(w, h), modes=("RGB",))
        for bits in (10, 12):
            buf = io.BytesIO()
            pillow_heif.options.SAVE_HDR_TO_12_BIT = bits == 12
            try:
                wide = pillow_heif.from_bytes(mode="RGB;16", size=(w, h), data=(face.astype("<u2") * 257).tobytes())
                wide.save(buf, quality=90)
            finally:
                pillow_heif.options.SAVE_HDR_TO_12_BIT = False
            add(f"{bits}-bit.heic", buf.getvalue(), "ok", f"{bits}-bit HEIC (read as 8 bits, with a note)", size=(w, h), modes=("RGB",))
    if avif_writable():
        add("animated.avif", _avif_bytes(rgb, save_all=True, append_images=[blue]), "ok",
            "animated AVIF (two frames: the first is used)", size=(w, h), modes=("RGB",))


def _tile(face: np.ndarray) -> np.ndarray:
    mirrored = face[:, ::-1]
    return np.ascontiguousarray(np.concatenate([np.concatenate([face, mirrored], 1), np.concatenate([mirrored, face], 1)], 0))


def _with_app1(jpeg: bytes, payload: bytes) -> bytes:
    """Insert an APP1 segment holding ``payload`` right after SOI."""
    seg = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + seg + jpeg[2:]


if __name__ == "__main__":  # pragma: no cover - a tool for people
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "smile-corpus")
    for c in build_corpus(out):
        print(f"{c.expect:14s} {c.name:28s} {c.what}")
    print(f"written to {out}")
