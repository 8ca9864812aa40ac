"""Phone formats beside JPEG: what writing a 12 MP result costs as JPEG, AVIF and HEIF.

The photo is :func:`benchmarks.codecs.make_jpeg`'s 12 MP JPEG (the sample portrait on a noisy
background, EXIF and sRGB ICC), decoded as the engine decodes it; each way writes it with
``encode.save_image`` as ``smile`` would (a JPEG with the source's own tables; AVIF and HEIF at
their default qualities, :data:`smilecore.encode.DEFAULT_AVIF_QUALITY` and ``DEFAULT_HEIF_QUALITY``),
and, for comparison, a JPEG at 95 and HEIF through x265's default preset.  Columns: encode time
(median), file size, PSNR of the decoded result against the pixels written, and whether EXIF and
ICC were kept.  HEIF needs pillow-heif (``pip install ".[heif]"``); without it those rows say so.
"""
from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np

from .codecs import _ms, make_jpeg

SIZE = (4000, 3000)


def _psnr(data: bytes, reference: np.ndarray) -> float:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        got = np.asarray(im.convert("RGB"), dtype=np.float64)
    mse = float(np.mean((got - reference) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def run(repeats: int = 3) -> list[dict]:
    """Rows of the table, one per way of writing the photo."""
    from PIL import Image

    from smilecore import encode, heif
    from smilecore.decode import load_image

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.jpg"
        make_jpeg(src, *SIZE)
        image, info = load_image(src)
        reference = np.asarray(image.convert("RGB"), dtype=np.float64)
        has_heif = heif.available()
        if has_heif:
            heif.require(str(src))

        def via_engine(ext: str, quality: int | None = None):
            out = Path(tmp) / f"out{ext}"
            return lambda: (encode.save_image(out, image, info, quality=quality), out.read_bytes())[1]

        def heif_default_preset():
            buf = io.BytesIO()
            image.save(buf, "HEIF", quality=encode.DEFAULT_HEIF_QUALITY, exif=info.exif, icc_profile=info.icc_profile)
            return buf.getvalue()

        ways = [("JPEG, the source's tables (smile's default)", via_engine(".jpg"), repeats),
                ("JPEG at 95", via_engine(".jpg", 95), repeats),
                (f"AVIF at {encode.DEFAULT_AVIF_QUALITY}, speed {encode.AVIF_SPEED} (smile's default)", via_engine(".avif"), repeats)]
        if has_heif:
            ways += [(f"HEIF at {encode.DEFAULT_HEIF_QUALITY}, x265 {heif.X265_PRESET} (smile's default)", via_engine(".heic"), repeats),
                     (f"HEIF at {encode.DEFAULT_HEIF_QUALITY}, x265's default preset", heif_default_preset, 1)]
        for name, fn, n in ways:
            ms, data = _ms(fn, n)
            with Image.open(io.BytesIO(data)) as im:
                kept = bool(im.info.get("exif")) and bool(im.info.get("icc_profile"))
            rows.append({"way": name, "encode": ms, "kb": len(data) / 1024, "psnr": _psnr(data, reference), "meta": kept})
        if not has_heif:
            rows.append({"way": "HEIF: pillow-heif is not installed (pip install '.[heif]')"})
    return rows


def to_markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table (ms: median)."""
    lines = ["| 12 MP result written as | encode ms | file KB | PSNR dB | EXIF + ICC kept |", "|---|---:|---:|---:|---|"]
    for r in rows:
        if "encode" not in r:
            lines.append(f"| {r['way']} | | | | |")
            continue
        lines.append(f"| {r['way']} | {r['encode']:.0f} | {r['kb']:.0f} | {r['psnr']:.1f} | {'yes' if r['meta'] else '**no**'} |")
    return "\n".join(lines)
