"""What a JPEG's header says of how it was encoded: its quantisation tables, chroma subsampling and quality, read
so that a result can be saved as its source was (:mod:`smilecore.decode`)."""
from __future__ import annotations

from PIL import Image


def copy_qtables(q) -> dict | None:
    """A copy of Pillow's ``quantization`` of a JPEG (table number -> 64 values), None when it has none."""
    if not q:
        return None
    try:
        return {int(k): list(v) for k, v in dict(q).items()}
    except Exception:
        return None


def jpeg_subsampling(im: Image.Image) -> int | None:
    """The JPEG's chroma subsampling as Pillow writes it (0 4:4:4, 1 4:2:2, 2 4:2:0); one Pillow cannot write
    becomes the least one that keeps all its colour detail (4:4:0 → 4:4:4, 4:1:1 → 4:2:2). None: grey, CMYK."""
    try:
        from PIL import JpegImagePlugin

        s = JpegImagePlugin.get_sampling(im)
        if s in (0, 1, 2):
            return s
        if getattr(im, "layers", 0) != 3:
            return None
        (h0, v0), (h1, v1) = im.layer[0][1:3], im.layer[1][1:3]
        across, down = h0 // max(h1, 1), v0 // max(v1, 1)  # (how many luma samples to one chroma sample)
        return 0 if across == 1 else 1 if down == 1 else 2
    except Exception:
        return None


#: IJG standard luminance quantisation table (quality 50); order does not matter for the estimate.
_STD_LUMA = (16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
             14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
             49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99)


def estimate_jpeg_quality(qtables: dict | None) -> int | None:
    """Estimate the IJG quality (1..100) a JPEG was saved with from its luminance table."""
    if not qtables or 0 not in qtables or len(qtables[0]) != 64:
        return None
    scale = 100.0 * sum(qtables[0]) / sum(_STD_LUMA)  # IJG: table = std * scale / 100
    quality = 5000.0 / scale if scale > 100 else (200.0 - scale) / 2.0
    return int(min(100, max(1, round(quality))))
