"""Where the Smile layer goes in Krita's layer stack, and what it carries over from its source.

The Smile layer sits right above the layer it was made from.  A full copy of that layer stacked
on it leaves the image as it was only when the layer is *plain*: Normal blending, opacity 255,
visible, not clipped (inherit alpha), no masks, no layer style, and every pixel either opaque or
fully transparent.  Any other layer would look different under a copy of itself (a copy at 50 %
opacity on the layer doubles it, a hidden layer's copy shows, an inverted layer's copy is not
inverted, a translucent pixel over itself gets denser), so it gets a Smile layer that holds only
the pixels the engine changed and composites like its source:

* a paint layer is duplicated (blending mode, opacity, visibility, inherit alpha, its masks and
  layer style come along) and its pixels cleared;
* any other layer (group, vector, file, clone, filter, fill) is read with its masks already
  applied (its projection): a new paint layer takes only its blending mode, opacity, visibility
  and inherit alpha, not its masks (they would apply twice).

Everything here touches Krita's nodes only; which pixels changed is smile_merge.py's.
"""
from __future__ import annotations

from typing import Any, Iterator, Optional

from .pixels import PixelError, Space
from .smile_merge import partly_transparent

NORMAL_BLENDING = "normal"
OPAQUE = 255
#: the layer is cleared in bands of at most this many bytes (a large float layer is hundreds of MB)
CLEAR_BAND_BYTES = 16 << 20


def masks(node: Any) -> list:
    """The masks (transparency, filter, transform, selection, colorize) right under ``node``."""
    return [child for child in node.childNodes() if str(child.type()).endswith("mask")]


def has_layer_style(node: Any) -> bool:
    """Does ``node`` carry a layer style (drop shadow, stroke…)?  False where Krita cannot say."""
    try:
        return bool(node.layerStyleToAsl())
    except Exception:  # (an older Krita without the call)
        return False


def composites_plainly(node: Any) -> bool:
    """Does ``node`` composite as its pixels are: Normal blending, opacity 255, visible, not
    clipped to the layers below (inherit alpha), no masks, no layer style?"""
    return (str(node.blendingMode()) == NORMAL_BLENDING and int(node.opacity()) == OPAQUE and bool(node.visible())
            and not node.inheritAlpha() and not masks(node) and not has_layer_style(node))


def is_plain(node: Any, data: bytes, space: Space) -> bool:
    """Is ``node``, whose pixels are ``data`` (in ``space``), plain: does a full copy of it
    stacked right above it leave the image as it is?  (Fully transparent pixels are fine.)"""
    offset, opaque = space.alpha
    return composites_plainly(node) and not partly_transparent(data, space.bytes_per_pixel, offset, opaque)


def stacked_layer(doc: Any, node: Any, name: str, space: Space) -> Any:
    """A new layer named ``name``, not yet in the image, that composites like ``node`` and holds
    no pixels: ``node`` duplicated and cleared (a paint layer: its masks come along), or a new
    paint layer with ``node``'s blending mode, opacity, visibility and inherit alpha (other
    layers, read with their masks applied)."""
    if str(node.type()) == "paintlayer":
        layer = node.duplicate()
        if layer is None:
            raise PixelError(f"Krita could not duplicate the layer '{node.name()}'")
        layer.setName(name)
        clear(layer, space)
        return layer
    layer = doc.createNode(name, "paintlayer")
    layer.setBlendingMode(node.blendingMode())
    layer.setOpacity(node.opacity())
    layer.setVisible(node.visible())
    layer.setInheritAlpha(node.inheritAlpha())
    return layer


def clear(layer: Any, space: Space) -> None:
    """Make every pixel of ``layer`` (not yet in the image) fully transparent (all bytes 0)."""
    bounds = layer.bounds()
    x, y, width, height = bounds.x(), bounds.y(), bounds.width(), bounds.height()
    if width <= 0 or height <= 0:
        return
    rows = max(1, CLEAR_BAND_BYTES // (width * space.bytes_per_pixel))
    for top in range(y, y + height, rows):
        band = min(rows, y + height - top)
        layer.setPixelData(bytes(width * band * space.bytes_per_pixel), x, top, width, band)


def find_layer(doc: Any, node_id: Any, name: str) -> Any:
    """The layer of ``doc`` whose unique id is ``node_id``, found again (the person may have
    deleted it, or closed the image, while the engine worked); PixelError when it is gone."""
    found: Optional[Any] = None
    try:
        if doc.nodeByUniqueID(node_id) is not None:  # (Krita's own look-up; its answer is no typed Node)
            found = next((n for n in _descendants(doc.rootNode()) if n.uniqueId() == node_id), None)
    except Exception:
        found = None
    if found is None:
        raise PixelError(f"the layer '{name}' was deleted (or its image closed) while Smile worked on it; "
                         "nothing was added: select a layer and Apply again")
    return found


def _descendants(node: Any) -> Iterator[Any]:
    for child in node.childNodes():
        yield child
        yield from _descendants(child)
