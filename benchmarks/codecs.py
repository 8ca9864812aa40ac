"""JPEG decode and encode: the engine's Pillow path beside simplejpeg (a libjpeg-turbo binding).

For a 3 MP and a 12 MP JPEG (the sample portrait on a noisy background, quality 92, with EXIF
and an ICC profile) it times what a photo costs before and after the edit, and checks what each
way keeps: the same decoded pixels, the source's quantisation tables, EXIF and ICC.

* Pillow, as the engine reads and writes (``decode.load_image`` + ``pixels.from_pil``;
  ``encode.save_image``, Huffman tables not optimised: ``encode.JPEG_OPTIMIZE``);
* Pillow with optimised Huffman tables (the engine's writer before this benchmark);
* simplejpeg, when it is installed (``pip install simplejpeg``; MIT, libjpeg-turbo inside its
  wheels): it takes a quality, not tables, and writes neither EXIF nor ICC.
"""
from __future__ import annotations

import io
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "astronaut.jpg"
CASES = [("3 MP", 2000, 1500), ("12 MP", 4000, 3000)]


def make_jpeg(path: Path, width: int, height: int) -> None:
    """The test JPEG: the sample portrait on a noisy background, quality 92, EXIF and sRGB ICC."""
    from PIL import Image, ImageCms

    rng = np.random.default_rng(0)
    canvas = rng.integers(90, 170, (height, width, 3), dtype=np.uint8)
    side = int(min(width, height) * 0.9)
    face = np.asarray(Image.open(SAMPLE).convert("RGB").resize((side, side), Image.LANCZOS))
    y, x = (height - side) // 2, (width - side) // 2
    canvas[y : y + side, x : x + side] = face
    exif = Image.Exif()
    exif[0x010F] = "Smile benchmark"  # Make
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(canvas).save(path, quality=92, exif=exif.tobytes(), icc_profile=icc)


def _ms(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats + 1):  # the first call warms up and is not counted
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times[1:]), out


def _kept(data: bytes, tables: dict) -> tuple[bool, bool]:
    """(quantisation tables equal to ``tables``, EXIF and ICC both present) of an encoded JPEG."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        same = {int(k): list(v) for k, v in im.quantization.items()} == tables
        return same, bool(im.info.get("exif")) and bool(im.info.get("icc_profile"))


def _one_case(src: Path, repeats: int) -> list[dict]:
    from smilecore import encode
    from smilecore.decode import load_image
    from smilecore.pixels import from_pil

    rows = []
    data = src.read_bytes()
    dec_ms, px = _ms(lambda: from_pil(load_image(src)[0]).array, repeats)
    image, info = load_image(src)
    out = src.with_name("out.jpg")

    def pillow(optimize: bool):
        encode.JPEG_OPTIMIZE, old = optimize, encode.JPEG_OPTIMIZE
        try:
            return _ms(lambda: (encode.save_image(out, image, info), out.read_bytes())[1], repeats)
        finally:
            encode.JPEG_OPTIMIZE = old

    for label, optimize in (("Pillow (engine)", False), ("Pillow, optimised Huffman tables", True)):
        enc_ms, jpg = pillow(optimize)
        tables, meta = _kept(jpg, info.jpeg_qtables)
        rows.append({"way": label, "decode": dec_ms, "encode": enc_ms, "kb": len(jpg) / 1024, "same_pixels": True,
                     "tables": tables, "meta": meta})
    try:
        import simplejpeg
    except ImportError:
        rows.append({"way": "simplejpeg (not installed)"})
        return rows
    sub = {0: "444", 1: "422", 2: "420"}.get(info.jpeg_subsampling, "420")
    dec_ms, arr = _ms(lambda: simplejpeg.decode_jpeg(data, colorspace="RGB"), repeats)
    enc_ms, jpg = _ms(lambda: simplejpeg.encode_jpeg(px, quality=info.quality, colorsubsampling=sub), repeats)
    tables, meta = _kept(jpg, info.jpeg_qtables)
    rows.append({"way": f"simplejpeg {simplejpeg.__version__} (quality {info.quality})", "decode": dec_ms,
                 "encode": enc_ms, "kb": len(jpg) / 1024, "same_pixels": bool(np.array_equal(arr, px)),
                 "tables": tables, "meta": meta})
    return rows


def run(repeats: int = 5) -> list[dict]:
    """Rows of the table, per case and way."""
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, w, h in CASES:
            src = Path(tmp) / f"in-{w}x{h}.jpg"
            make_jpeg(src, w, h)
            for row in _one_case(src, repeats):
                results.append({"photo": label, **row})
    return results


def to_markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table (ms: median)."""
    yes = {True: "yes", False: "**no**"}
    lines = ["| photo | way | decode ms | encode ms | file KB | same pixels | tables kept | EXIF + ICC kept |",
             "|---|---|---:|---:|---:|---|---|---|"]
    for r in rows:
        if "decode" not in r:
            lines.append(f"| {r['photo']} | {r['way']} | | | | | | |")
            continue
        lines.append(f"| {r['photo']} | {r['way']} | {r['decode']:.0f} | {r['encode']:.0f} | {r['kb']:.0f} | "
                     f"{yes[r['same_pixels']]} | {yes[r['tables']]} | {yes[r['meta']]} |")
    return "\n".join(lines)
