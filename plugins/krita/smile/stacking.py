"""Where the Smile layer goes in Krita's layer stack, and what it carries over from its source.

The Smile layer sits right above the layer it was made from.  A full copy of that layer stacked
on it leaves the image as it was only when the layer is *plain*: Normal blending, opacity 255,
visible, not clipped (inherit alpha), no masks (a local selection mask does not count: it only
holds a selection), no layer style, and every pixel either opaque or
fully transparent.  Such a layer gets a full copy with the faces changed, and stays as it is.

Any other layer would look different under a copy of itself (a copy at 50 % opacity on the layer
doubles it, a translucent pixel over itself gets denser), and a
layer holding only the changed pixels on top of it would count twice in the face (Multiply
multiplies it twice) and blur differently under a filter mask.  So the Smile layer *replaces*
it: it composites exactly like the source edited in place, and the source is hidden under it
(kept for comparison):

* a paint layer is duplicated (blending mode, opacity, visibility, inherit alpha, its masks and
  layer style come along) and the changed pixels are written into the duplicate;
* any other layer (group, vector, file, clone) becomes a new paint layer holding
  what it shows (its projection, its masks applied) with the changed pixels, with its blending
  mode, opacity, visibility, inherit alpha and layer style (not its masks: they would apply
  twice).  A pass-through group, a filter layer and a fill layer have no pixels of their own:
  they are refused (pixels.py), and so is a hidden layer (:func:`check_visible`): its
  replacement would be hidden too.

Everything here touches Krita's nodes only; which pixels changed is smile_merge.py's.
"""
from __future__ import annotations

from typing import Any, Iterator, Optional

from .pixels import PixelError, Space
from .smile_merge import partly_transparent

NORMAL_BLENDING = "normal"
OPAQUE = 255
SELECTION_MASK = "selectionmask"
HIDDEN, TRANSPARENT = "hidden", "at opacity 0 %"  # (why a group around the layer shows nothing)
TOGGLE_VISIBILITY = "toggle_layer_visibility"  # Krita's action (an undo step, unlike Node.setVisible)


def masks(node: Any) -> list:
    """The masks right under ``node`` that change how it looks (transparency, filter, transform,
    colorize); not a local selection mask, which only holds a selection."""
    return [child for child in node.childNodes()
            if str(child.type()).endswith("mask") and str(child.type()) != SELECTION_MASK]


def check_visible(node: Any) -> None:
    """PixelError (one line) when ``node`` does not show: hidden, at opacity 0, or inside groups
    that are (all of them named at once): its Smile layer would not show either (it goes right
    above ``node``, in the same group, with its opacity) and change nothing that shows.  Apply
    refuses it before any request is sent; it does not show the layer or groups itself, which
    would change more of the image than the face."""
    name = node.name()
    if not node.visible():
        raise PixelError(f"'{name}' is hidden: show it (its eye in the Layers docker), then Apply")
    if int(node.opacity()) == 0:
        raise PixelError(f"'{name}' is at opacity 0 %, so nothing of it shows: raise its opacity "
                         "(Layer → Properties…), then Apply")
    groups = unseen_groups(node)
    if not groups:
        return
    states = {state for _, found in groups for state in found}
    if len(groups) == 1 and states == {HIDDEN}:
        raise PixelError(f"'{name}' is inside the hidden group '{groups[0][0].name()}': "
                         "show the group (its eye in the Layers docker), then Apply")
    if len(groups) == 1 and states == {TRANSPARENT}:
        raise PixelError(f"'{name}' is inside the group '{groups[0][0].name()}' at opacity 0 %, so nothing of it "
                         "shows: raise the group's opacity (Layer → Properties…), then Apply")
    each = [f"'{group.name()}' ({' and '.join(found)})" for group, found in groups]
    listed = ", ".join(each[:-1]) + " and " + each[-1] if len(each) > 1 else each[0]
    it, its = ("it", "its") if len(groups) == 1 else ("them", "their")
    fixes = ([f"show {it} ({its} eye in the Layers docker)"] if HIDDEN in states else []) + \
        ([f"raise {its} opacity (Layer → Properties…)"] if TRANSPARENT in states else [])
    raise PixelError(f"'{name}' is inside the group{'s' if len(groups) > 1 else ''} {listed}, so nothing of it shows: "
                     f"{' and '.join(fixes)}, then Apply")


def unseen_groups(node: Any) -> list:
    """The groups around ``node`` that are hidden or at opacity 0, outermost first, each with
    what hides it ([(group, ["hidden", "at opacity 0 %"])]; empty: every group around it shows)."""
    found = []
    parent = node.parentNode()
    while parent is not None and parent.parentNode() is not None:  # (the root node has no parent)
        states = [state for state, unseen in ((HIDDEN, not parent.visible()), (TRANSPARENT, int(parent.opacity()) == 0))
                  if unseen]
        if states:
            found.insert(0, (parent, states))
        parent = parent.parentNode()
    return found


def clones_of(doc: Any, node: Any) -> list:
    """The clone layers of ``doc`` that may copy ``node``: the ones Krita says copy it, or, where
    its scripting cannot say which layer a clone copies (Krita 5.1), every clone layer."""
    found = []
    for other in descendants(doc.rootNode()):
        if str(other.type()) != "clonelayer" or other.uniqueId() == node.uniqueId():
            continue
        try:
            source = other.sourceNode()  # (Krita 5.2 and later)
        except Exception:
            found.append(other)
            continue
        if source is not None and source.uniqueId() == node.uniqueId():
            found.append(other)
    return found


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


def hide(doc: Any, node: Any) -> bool:
    """Hide ``node`` of ``doc``; True when Krita recorded it as an undo step.

    A script's ``Node.setVisible`` is no undo step in Krita 5, but Krita's own "toggle layer
    visibility" action is; it acts on the layers selected in the active view, so it is used
    only when that view shows ``doc`` and exactly ``node`` is selected in it once ``node`` is
    made active, and only counts when ``node`` is hidden afterwards.  Otherwise (no window, as
    in ``kritarunner``; another view; other layers selected) ``setVisible(False)``: False.
    """
    if _hide_undoably(doc, node):
        return True
    node.setVisible(False)
    return False


def _hide_undoably(doc: Any, node: Any) -> bool:
    """Hide ``node`` with Krita's action where that is safe (see :func:`hide`); True when it is
    hidden now, False when nothing was done (or the action did not hide it)."""
    if not node.visible():  # (hidden meanwhile: the toggle would show it; setVisible keeps it hidden)
        return False
    try:
        from krita import Krita  # only importable inside Krita

        app = Krita.instance()
        window = app.activeWindow()
        view = window.activeView() if window is not None else None
        action = app.action(TOGGLE_VISIBILITY)
        if view is None or action is None or view.document() != doc:
            return False
        doc.setActiveNode(node)
        selected = view.selectedNodes()
        if len(selected) != 1 or selected[0].uniqueId() != node.uniqueId():
            return False
        action.trigger()
        doc.waitForDone()
        return not node.visible()
    except Exception:  # (an older or newer Krita without one of the calls)
        return False


def replacement_layer(doc: Any, node: Any, name: str) -> Any:
    """A new layer named ``name``, not yet in the image, that composites like ``node`` and holds
    its pixels: a paint layer duplicated (its masks and layer style come along), any other a new
    paint layer with ``node``'s blending mode, opacity, visibility, inherit alpha and layer style,
    still empty (the caller gives it what ``node`` shows)."""
    if str(node.type()) == "paintlayer":
        layer = node.duplicate()
        if layer is None:
            raise PixelError(f"Krita could not duplicate the layer '{node.name()}'")
        layer.setName(name)
        return layer
    layer = doc.createNode(name, "paintlayer")
    layer.setBlendingMode(node.blendingMode())
    layer.setOpacity(node.opacity())
    layer.setVisible(node.visible())
    layer.setInheritAlpha(node.inheritAlpha())
    if has_layer_style(node):
        try:
            layer.setLayerStyleFromAsl(node.layerStyleToAsl())
        except Exception:  # (an older Krita without the call: the style is left out)
            pass
    return layer


def find_layer(doc: Any, node_id: Any, name: str) -> Any:
    """The layer of ``doc`` whose unique id is ``node_id``, found again (the person may have
    deleted it, or closed the image, while the engine worked); PixelError when it is gone."""
    found: Optional[Any] = None
    try:
        if doc.nodeByUniqueID(node_id) is not None:  # (Krita's own look-up; its answer is no typed Node)
            found = next((n for n in descendants(doc.rootNode()) if n.uniqueId() == node_id), None)
    except Exception:
        found = None
    if found is None:
        raise PixelError(f"the layer '{name}' was deleted (or its image closed) while Smile worked on it; "
                         "nothing was added: select a layer and Apply again")
    return found


def descendants(node: Any) -> Iterator[Any]:
    """Every node under ``node``, depth first."""
    for child in node.childNodes():
        yield child
        yield from descendants(child)
