"""Which layer Smile for GIMP edits, and what it refuses before the engine gets any pixels.

``smile install-plugin gimp`` puts this file next to ``smile.py`` (the plug-in's folder); it
needs only GIMP's ``gi`` bindings.  Each refusal is one line saying what to do
(:class:`SmileFailure`); none changes the image.
"""
from __future__ import annotations

import gi

gi.require_version("Gimp", "3.0")
from gi.repository import Gimp  # noqa: E402

#: Layer modes under which a fully opaque pixel on top simply replaces what is below (a pass-through
#: group's only where each of its layers is Normal: see :func:`blends_through`).
PLAIN_MODES = ("NORMAL", "NORMAL_LEGACY", "PASS_THROUGH")
NEW_LAYER_OFF = "or turn off \"Result on a new layer\"."


class SmileFailure(Exception):
    """A problem on GIMP's side, with a one-line message meant for the person using GIMP."""


def plain_mode(layer: Gimp.Layer) -> bool:
    """Is ``layer``'s mode one of :data:`PLAIN_MODES`?"""
    return layer.get_mode() in [getattr(Gimp.LayerMode, name) for name in PLAIN_MODES]


def source_layer(drawables: list) -> Gimp.Layer:
    """The layer to smile: the one selected, or the layer of a selected layer mask (GIMP selects a
    mask as it is added, to paint on; a mask has no face to edit)."""
    if len(drawables) != 1:
        raise SmileFailure(f"{len(drawables) or 'no'} layers are selected: select one layer (in the Layers "
                           "dialog), then run Smile again; it edits one layer at a time.")
    if isinstance(drawables[0], Gimp.LayerMask):
        return Gimp.Layer.from_mask(drawables[0])
    if not isinstance(drawables[0], Gimp.Layer):
        raise SmileFailure(f"the channel '{drawables[0].get_name()}' is selected: select the photo's layer "
                           "in the Layers dialog, then run Smile again.")
    return drawables[0]


def blends_through(layer: Gimp.Layer) -> bool:
    """Is ``layer`` a pass-through group holding a layer (at any depth) in a mode other than Normal:
    one that blends with what lies below the group, which the group's own pixels do not show?"""
    if layer.get_mode() != Gimp.LayerMode.PASS_THROUGH:
        return False
    return any(not plain_mode(child) or blends_through(child) for child in layer.get_children())


def groups_where(layer: Gimp.Layer, test) -> list[str]:
    """The names of the groups ``layer`` sits in for which ``test(group)`` holds, outermost first."""
    names = []
    parent = layer.get_parent()
    while parent is not None:
        if test(parent):
            names.insert(0, parent.get_name())
        parent = parent.get_parent()
    return names


def named(groups: list[str]) -> str:
    """'the group 'G'' or 'the groups 'G' and 'H''."""
    return ("the group " if len(groups) == 1 else "the groups ") + " and ".join(f"'{group}'" for group in groups)


def check_source(image, layer: Gimp.Layer, new_layer: bool) -> None:
    """SmileFailure (one line) when Smile cannot edit ``layer`` as asked: a group in place, a
    Pass through group that blends with what is below it, a hidden layer, one at 0 % opacity or one in
    hidden groups or groups at 0 % (a new layer would show nothing, or a face over nothing), a floating selection (a new layer
    would cover it, or hide it with its source), or locked pixels in place."""
    name = layer.get_name()
    if layer.is_group() and not new_layer:
        raise SmileFailure("a layer group cannot be edited in place; turn on "
                           "\"Result on a new layer\" or select a single layer.")
    if not new_layer:
        if layer.get_lock_content():
            raise SmileFailure("the layer's pixels are locked: unlock them in the Layers dialog, or turn on "
                               "\"Result on a new layer\".")
        return
    if blends_through(layer):
        raise SmileFailure(f"the group '{name}' is in Pass through mode and holds layers "
                           "that blend with what is below it: set its mode to Normal, or select one layer.")
    if not layer.get_visible():
        raise SmileFailure(f"the layer '{name}' is hidden: show it (its eye in the Layers dialog), {NEW_LAYER_OFF}")
    if layer.get_opacity() <= 0:
        raise SmileFailure(f"the layer '{name}' is at 0 % opacity, so a new layer would show nothing: raise its "
                           f"Opacity in the Layers dialog, {NEW_LAYER_OFF}")
    groups = groups_where(layer, lambda group: not group.get_visible())
    if groups:
        listed = " and ".join(f"'{group}'" for group in groups)
        which = ("group", "the group (its eye") if len(groups) == 1 else ("groups", "them (their eyes")
        raise SmileFailure(f"the layer '{name}' is inside the hidden {which[0]} {listed}: show {which[1]} in the "
                           f"Layers dialog), {NEW_LAYER_OFF}")
    groups = groups_where(layer, lambda group: group.get_opacity() <= 0)
    if groups:
        raise SmileFailure(f"the layer '{name}' is inside {named(groups)} at 0 % opacity, so a new layer would show "
                           f"nothing: raise {'its' if len(groups) == 1 else 'their'} Opacity in the Layers dialog, "
                           f"{NEW_LAYER_OFF}")
    floating = image.get_floating_sel()
    if floating is not None and floating.get_id() != layer.get_id():
        raise SmileFailure("the image has a floating selection, which a new layer would cover or hide: anchor it "
                           f"(Layer ▸ Anchor Layer) or make it a layer (Layer ▸ To New Layer), {NEW_LAYER_OFF}")
