"""Colour conversions done by Krita itself, on throw-away documents.

The engine sees photos as they are stored in files: 8 or 16 bits, with a perceptual tone curve
(sRGB's, or a gamma near it).  Krita's own defaults for 16-bit integer and float images are
*linear* (``sRGB-elle-V2-g10.icc``): sent as they are, a face would look dark and contrasty to
the engine, and values above 1.0 cannot even be written to a PNG.  So such pixels are converted
by Krita (its colour engine, LCMS) to :func:`working_space`: 16-bit RGBA, in the document's own
profile when that one is perceptual (no change of gamut), else in sRGB; and the pixels the
engine changed are converted back the same way.  The user's document is never touched: every
conversion runs on a temporary document that is closed at once.
"""
from __future__ import annotations

import struct
from typing import Any, Dict

from .pixels import PixelError, Space

#: The profile faces are converted to when the document's own tone curve is not perceptual.
SRGB_PROFILE = "sRGB-elle-V2-srgbtrc.icc"
#: A mid grey (sRGB-encoded 0.5) must land within this of 0.5 in a profile for the profile to
#: count as perceptual (a linear one puts it at 0.21, gamma 1.8 at 0.43, L* at 0.53).
PERCEPTUAL_TOLERANCE = 0.1
TEMP_NAME = "smile-temporary"

#: profile name -> perceptual?  (Krita's sRGB profiles are known; others are measured)
_perceptual: Dict[str, bool] = {SRGB_PROFILE: True, "sRGB built-in": True, "sRGB-elle-V2-g10.icc": False}


def _krita() -> Any:
    from krita import Krita  # only importable inside Krita

    return Krita.instance()


def convert(data: bytes, width: int, height: int, source: Space, target: Space) -> bytes:
    """``data`` (``width``×``height`` pixels in ``source``) converted by Krita to ``target``."""
    if source == target:
        return data
    app = _krita()
    doc = app.createDocument(width, height, TEMP_NAME, source.model, source.depth, source.profile, 72.0)
    if doc is None:
        raise PixelError(f"Krita could not make a temporary {source.words()} image")
    try:
        node = doc.topLevelNodes()[0]
        node.setPixelData(data, 0, 0, width, height)
        if not doc.setColorSpace(target.model, target.depth, target.profile):
            raise PixelError(f"Krita could not convert {source.words()} to {target.words()}")
        doc.waitForDone()
        node = doc.topLevelNodes()[0]
        out = bytes(node.pixelData(0, 0, width, height))
    finally:
        doc.close()
    if len(out) != width * height * target.bytes_per_pixel:
        raise PixelError(f"Krita converted {width}×{height} pixels to {len(out)} bytes of {target.words()}")
    return out


def is_perceptual(space: Space) -> bool:
    """Does ``space``'s profile have a perceptual tone curve (sRGB's or a gamma near it)?

    Measured once per profile: an sRGB-encoded mid grey converted into it by Krita."""
    if space.model != "RGBA":
        return False
    if space.profile not in _perceptual:
        grey = struct.pack("<4H", 32768, 32768, 32768, 65535)
        probe = convert(grey, 1, 1, Space("RGBA", "U16", SRGB_PROFILE), Space("RGBA", "U16", space.profile))
        value = struct.unpack("<4H", probe)[1] / 65535.0  # (green)
        _perceptual[space.profile] = abs(value - 0.5) <= PERCEPTUAL_TOLERANCE
    return _perceptual[space.profile]


def working_space(space: Space) -> Space:
    """The 16-bit RGBA space the engine gets a document in ``space`` in."""
    profile = space.profile if is_perceptual(space) else SRGB_PROFILE
    return Space("RGBA", "U16", profile)


def sent_as_is(space: Space) -> bool:
    """Can the layer's own bytes go to the engine as an 8-bit PNG, as they are?"""
    return space.model == "RGBA" and space.depth == "U8" and is_perceptual(space)
