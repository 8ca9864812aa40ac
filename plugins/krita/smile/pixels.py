"""Moving pixels between a Krita document and PNG files, through QImage only.

Which documents Smile takes, and how their pixels travel to the engine:

* **8-bit RGBA** with a perceptual (non-linear) profile, Krita's default for JPEG/PNG: the
  layer's B,G,R,A bytes are exactly QImage's ``Format_ARGB32`` in memory on little-endian
  machines; they go to the engine as they are, as an 8-bit PNG.
* everything else that is **RGB or grayscale** (16-bit integer, 16- and 32-bit float, linear
  profiles, GRAYA): Krita converts a copy of the pixels to 16-bit RGBA with a perceptual tone
  curve (colour.py), whose B,G,R,A 16-bit words become a 16-bit PNG (QImage's
  ``Format_RGBA64`` with red and blue swapped); the changed pixels of the engine's answer are
  converted back by Krita and only they replace the layer's own values (merge.py).

Everything else (CMYK, Lab, XYZ, YCbCr, masks, filter and fill layers, a pass-through group, a layer in another colour
space than the image) is refused with a one-line message saying what to do.  The selection
comes as one byte per pixel (``Format_Grayscale8``) at every depth.
"""
from __future__ import annotations

import struct
import sys
from typing import Any, NamedTuple, Tuple

from .qt import QImage, byte_data, enum

#: Bytes per pixel of the colour spaces Smile takes, as Krita's ``pixelData`` hands them out:
#: 8-bit RGBA is B,G,R,A; 16-bit integer RGBA is B,G,R,A little-endian words; half and single
#: float RGBA are R,G,B,A; grayscale is gray, alpha.
BYTES_PER_PIXEL = {
    ("RGBA", "U8"): 4, ("RGBA", "U16"): 8, ("RGBA", "F16"): 8, ("RGBA", "F32"): 16,
    ("GRAYA", "U8"): 2, ("GRAYA", "U16"): 4, ("GRAYA", "F16"): 4, ("GRAYA", "F32"): 8,
}
#: The bytes of full opacity of one alpha value at each depth (little-endian; alpha comes last
#: in every pixel layout above).
OPAQUE_ALPHA = {"U8": b"\xff", "U16": b"\xff\xff", "F16": struct.pack("<e", 1.0), "F32": struct.pack("<f", 1.0)}
MODEL_WORDS = {"RGBA": "RGB", "GRAYA": "grayscale", "CMYKA": "CMYK", "LABA": "L*a*b*", "XYZA": "XYZ",
               "YCbCrA": "YCbCr"}
DEPTH_WORDS = {"U8": "8-bit integer", "U16": "16-bit integer", "F16": "16-bit float", "F32": "32-bit float"}
#: Layers whose pixels Smile reads: their own (paint layers) or what they show (the others).
LAYER_TYPES = ("paintlayer", "grouplayer", "vectorlayer", "filelayer", "clonelayer")
#: Layers with no pixels of their own, refused: the Smile layer would replace a live filter or
#: fill with a fixed picture of it.
NO_PIXELS = {"filterlayer": "a filter layer", "filllayer": "a fill layer"}
CONVERT_HINT = "convert it with Image → Convert Image Color Space… (RGB/Alpha or Grayscale/Alpha, any depth)"


class PixelError(Exception):
    """A one-line message for the person using the plug-in."""


class Space(NamedTuple):
    """A Krita colour space: model ("RGBA"), depth ("U16") and profile name."""

    model: str
    depth: str
    profile: str

    @property
    def bytes_per_pixel(self) -> int:
        """Bytes of one pixel in Krita's ``pixelData`` for this colour model and depth."""
        return BYTES_PER_PIXEL[(self.model, self.depth)]

    @property
    def alpha(self) -> Tuple[int, bytes]:
        """Where a pixel's alpha starts (its last channel) and the bytes of full opacity."""
        opaque = OPAQUE_ALPHA[self.depth]
        return self.bytes_per_pixel - len(opaque), opaque

    def words(self) -> str:
        """``RGB 16-bit float (sRGB-elle-V2-g10.icc)``, for messages."""
        model = MODEL_WORDS.get(self.model, self.model)
        return f"{model} {DEPTH_WORDS.get(self.depth, self.depth)} ({self.profile or 'no profile'})"


def document_space(doc: Any) -> Space:
    """The colour model, depth and profile of a Krita document ``doc``."""
    return Space(str(doc.colorModel()), str(doc.colorDepth()), str(doc.colorProfile()))


def check_document(doc: Any, node: Any) -> Space:
    """The colour space of ``node`` when Smile can work on it; PixelError (saying what to do)
    when not: no image or layer, a mask, a filter or fill layer, a pass-through group, a colour
    model other than RGB or grayscale, a layer in another colour space than its image."""
    if doc is None:
        raise PixelError("open an image first")
    if node is None:
        raise PixelError("select a layer first")
    space = document_space(doc)
    kind = f"{space.model}/{space.depth}"
    if space.model not in ("RGBA", "GRAYA"):
        raise PixelError(f"Smile works on RGB and grayscale images; this one is {kind} "
                         f"({MODEL_WORDS.get(space.model, space.model)}): {CONVERT_HINT}")
    if (space.model, space.depth) not in BYTES_PER_PIXEL:
        raise PixelError(f"Smile cannot read {kind} images; {CONVERT_HINT}")
    node_type = str(node.type())
    if node_type.endswith("mask"):
        raise PixelError(f"the active layer is a {node_type.replace('mask', ' mask')}: "
                         "select the layer itself in the Layers docker")
    if node_type in NO_PIXELS:
        raise PixelError(f"'{node.name()}' is {NO_PIXELS[node_type]}: it has no pixels of its own; "
                         "select the paint layer with the face")
    if node_type not in LAYER_TYPES:
        raise PixelError(f"Smile cannot read a layer of type '{node_type}': select a paint layer")
    if pass_through(node):
        raise PixelError(f"the group '{node.name()}' is in pass-through mode, so it has no picture of its own: "
                         "select a layer inside it, or turn pass-through off for it in the Layers docker")
    if node.colorModel():  # a layer may have a colour space of its own
        layer = Space(str(node.colorModel()), str(node.colorDepth()), str(node.colorProfile()))
        if layer != space:
            raise PixelError(f"the active layer is {layer.model}/{layer.depth} ({layer.profile}) but the image is "
                             f"{kind} ({space.profile}): convert the layer with Layer → Convert → "
                             "Convert Layer Color Space… to the image's colour space")
    if sys.byteorder != "little":
        raise PixelError("Smile's Krita plug-in needs a little-endian machine")
    return space


def pass_through(node: Any) -> bool:
    """Is ``node`` a group in pass-through mode (its layers blend straight into those below it)?"""
    try:
        return str(node.type()) == "grouplayer" and bool(node.passThroughMode())
    except Exception:  # (a node Krita handed out untyped, without the call)
        return False


PNG_QUALITY = 80  # Qt maps it to a light zlib level: temporary files, speed matters more


def layer_bytes(node: Any, x: int, y: int, width: int, height: int) -> bytes:
    """The bytes of ``node`` in the given image rectangle, in the layer's own colour space:
    a paint layer's own pixels, what any other layer shows."""
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


def save_bgra64_png(data: bytes, width: int, height: int, path: str) -> None:
    """Write B,G,R,A 16-bit words (Krita's 16-bit integer RGBA) as a 16-bit RGBA PNG."""
    if len(data) != width * height * 8:
        raise PixelError(f"got {len(data)} bytes for a {width}×{height} 16-bit layer")
    image = QImage(data, width, height, width * 8, enum(QImage, "Format.Format_RGBA64"))
    if not image.rgbSwapped().save(path, "PNG", PNG_QUALITY):
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


def _load_png(path: str, width: int, height: int) -> Any:
    image = QImage(path)
    if image.isNull():
        raise PixelError(f"the engine's result {path} could not be read")
    if (image.width(), image.height()) != (width, height):
        raise PixelError(f"the engine returned {image.width()}×{image.height()} pixels, expected {width}×{height}")
    return image


def load_png_bgra(path: str, width: int, height: int) -> bytes:
    """Read a PNG written by the engine back into B,G,R,A bytes of the given size."""
    image = _load_png(path, width, height).convertToFormat(enum(QImage, "Format.Format_ARGB32"))
    return byte_data(image)


def load_png_bgra64(path: str, width: int, height: int) -> bytes:
    """Read a 16-bit PNG written by the engine back into B,G,R,A 16-bit words."""
    image = _load_png(path, width, height)
    if image.depth() != 64:
        raise PixelError(f"the engine answered a 16-bit image with a {image.depth() // 4}-bit one: "
                         "update it (pip install -U /path/to/smile && smile install-plugin krita)")
    return byte_data(image.convertToFormat(enum(QImage, "Format.Format_RGBA64")).rgbSwapped())
