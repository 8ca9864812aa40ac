"""Moving pixels between a Krita document and PNG files, through QImage only.

Krita's 8-bit RGBA layers hand out bytes in B,G,R,A order, which is exactly QImage's
``Format_ARGB32`` in memory on little-endian machines; the selection comes as one byte per
pixel (``Format_Grayscale8``).
"""
from __future__ import annotations

import sys
from typing import Any

from .qt import QImage, byte_data, enum

SUPPORTED_MODEL = "RGBA"
SUPPORTED_DEPTH = "U8"


class PixelError(Exception):
    """A one-line message for the person using the plug-in."""


def check_document(doc: Any, node: Any) -> None:
    """Raise PixelError unless ``doc`` and ``node`` are 8-bit RGBA and usable."""
    if doc is None:
        raise PixelError("open an image first")
    if node is None:
        raise PixelError("select a layer first")
    model, depth = doc.colorModel(), doc.colorDepth()
    if (model, depth) != (SUPPORTED_MODEL, SUPPORTED_DEPTH):
        raise PixelError(f"Smile works on 8-bit RGBA images; this one is {model}/{depth}: "
                         "convert it with Image → Convert Image Color Space… (RGB/Alpha, 8-bit integer)")
    if node.colorModel() and (node.colorModel(), node.colorDepth()) != (SUPPORTED_MODEL, SUPPORTED_DEPTH):
        raise PixelError(f"the active layer is {node.colorModel()}/{node.colorDepth()}; "
                         "Smile needs an 8-bit RGBA layer")
    if sys.byteorder != "little":
        raise PixelError("Smile's Krita plug-in needs a little-endian machine")


PNG_QUALITY = 80  # Qt maps it to a light zlib level: temporary files, speed matters more


def layer_bytes(node: Any, x: int, y: int, width: int, height: int) -> bytes:
    """The B,G,R,A bytes of ``node`` in the given image rectangle."""
    if node.type() == "paintlayer":
        data = node.pixelData(x, y, width, height)
    else:
        data = node.projectionPixelData(x, y, width, height)
    return bytes(data)


def save_bgra_png(data: bytes, width: int, height: int, path: str) -> None:
    """Write B,G,R,A bytes as an RGBA PNG."""
    if len(data) != width * height * 4:
        raise PixelError(f"got {len(data)} bytes for a {width}×{height} layer; is it 8-bit RGBA?")
    image = QImage(data, width, height, width * 4, enum(QImage, "Format.Format_ARGB32"))
    if not image.copy().save(path, "PNG", PNG_QUALITY):
        raise PixelError(f"could not write the temporary file {path}")


def save_selection_png(doc: Any, x: int, y: int, width: int, height: int, path: str) -> bool:
    """Write the document's selection in the rectangle as an 8-bit gray PNG.

    Returns False when there is no selection.
    """
    selection = doc.selection()
    if selection is None:
        return False
    data = bytes(selection.pixelData(x, y, width, height))
    if len(data) != width * height:
        raise PixelError("could not read the selection")
    if not any(data):
        raise PixelError("the selection is empty: select the face, or deselect all (Ctrl+Shift+A)")
    image = QImage(data, width, height, width, enum(QImage, "Format.Format_Grayscale8"))
    if not image.copy().save(path, "PNG", PNG_QUALITY):
        raise PixelError(f"could not write the temporary file {path}")
    return True


def load_png_bgra(path: str, width: int, height: int) -> bytes:
    """Read a PNG written by the engine back into B,G,R,A bytes of the given size."""
    image = QImage(path)
    if image.isNull():
        raise PixelError(f"the engine's result {path} could not be read")
    if (image.width(), image.height()) != (width, height):
        raise PixelError(f"the engine returned {image.width()}×{image.height()} pixels, expected {width}×{height}")
    image = image.convertToFormat(enum(QImage, "Format.Format_ARGB32"))
    return byte_data(image)
