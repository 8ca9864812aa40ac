#!/usr/bin/env python3
"""Smile for GIMP 3: make the faces in a photo smile (Filters ▸ Smile…).

This plug-in needs only GIMP's ``gi`` bindings and the Python standard library.  The
image work is done by the Smile engine running in its own process (its own Python), so
GIMP's Python version never matters.  The engine is found, in this order, through:

1. the environment variable ``SMILE_ENGINE``: path of the ``smile`` program;
2. ``smile-engine.json`` next to this file, written by ``smile install-plugin gimp``:
   ``{"command": [".../bin/smile", "worker"], "python": ..., "version": ...}``;
3. a ``smile`` program on ``PATH``.

Talking to the engine (``smile worker``, docs/worker-protocol.md) is the job of
``smile_client.py``, which ``smile install-plugin gimp`` puts next to this file and which the
Krita plug-in shares; ``smile_layers.py`` (next to it too) says which layer is edited and what is
refused; this file holds GIMP's side: the procedure, its dialog and the pixels,
which travel as PNG files in a private temporary folder.  The strength slider's range is the
engine's model's, from the engine's greeting.

Pixels of any precision: the engine reads and writes sRGB-encoded 8- and 16-bit PNG, so a layer
is sent as 8 bits when it has 8 (non-linear), else as 16, and only the pixels the engine changed
are written back, converted by GIMP into the layer's own format; every other pixel keeps its exact
value (16-bit, float, values beyond 0..1 from HDR work, alpha).  Indexed images are refused.

A result on a new layer hides what the source layer's own layer mask hides: the new layer's mask
is the face mask ANDed with the source's, or a copy of the source's without the face mask.  Where a
layer on top would not look like the edit in place (the source at under 100 % opacity, not Normal,
or half-transparent where the new layer shows), the new layer takes the source's place (its
blending, a copy of its mask, no face mask) and the source is hidden, in the same undo step.
"""
from __future__ import annotations

import os
import sys
import tempfile

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, Gio, GLib, GObject  # noqa: E402

from smile_client import (EngineProblem, EngineProcess, StrengthSlider, explain,  # noqa: E402
                          start_engine, strength_slider, write_png)
from smile_merge import changed_runs, partly_transparent  # noqa: E402  (shared with the Krita plug-in)
from smile_layers import SmileFailure, check_source, plain_mode, source_layer  # noqa: E402  (next to this file)

PROCEDURE_NAME = "plug-in-smile"
EDITOR = "gimp"
#: Precisions sent to the engine as 8-bit PNG (sRGB-encoded, as stored); any other is sent as 16-bit.
EIGHT_BIT = ("U8_NON_LINEAR", "U8_PERCEPTUAL")
#: Precisions whose alpha 16 bits hold exactly; the engine never changes alpha, and in the others
#: (half, float, double, u32) a changed pixel keeps its alpha through a format that holds them all.
SIXTEEN_BIT_AT_MOST = ("U8_LINEAR", "U8_NON_LINEAR", "U8_PERCEPTUAL", "U16_LINEAR", "U16_NON_LINEAR",
                       "U16_PERCEPTUAL")
MASK_IN = "Y u8"         # selection / layer-mask coverage, 0..255
SELECTED = bytes([0] + [255] * 255)  # a selection's coverage as "selected or not" (bytes.translate)
MASK_FILE = "Y' u8"      # an 8-bit grayscale PNG as GIMP loads it (bytes as stored)
MASK_COVER = bytes([0] + [255] * 255)  # byte table: any change → fully shown
MASK_DEEP = "Y u16"      # a layer mask read to tell full coverage from partial (0 / 65535 / between)
#: Composite modes under which a fully opaque pixel on top simply replaces what is below.
PLAIN_COMPOSITE = ("AUTO", "UNION")
#: The procedure's own bounds for "strength"; the engine's model sets the real range (its
#: greeting: the dialog's slider) and refuses a strength outside it.
STRENGTH_BOUND = 100.0


# --------------------------------------------------------------------------- engine
def open_engine() -> EngineProcess:
    """Start the engine (``SMILE_ENGINE``, else as :func:`smile_client.find_engine` says) and
    check its greeting; a model that could not be loaded is reported now."""
    override = os.environ.get("SMILE_ENGINE", "").strip()
    if override:
        if not os.path.isfile(override):
            raise EngineProblem(f"SMILE_ENGINE is set to {override!r}, which is not a file. "
                                "Point it at the `smile` program, or unset it.")
        engine = EngineProcess([override, "worker"], EDITOR)
        engine.greet(Gimp.progress_pulse)
    else:
        engine = start_engine(os.path.dirname(os.path.abspath(__file__)), EDITOR, Gimp.progress_pulse)
    if engine.greeting.model_error is not None:
        engine.close()
        raise EngineProblem(explain(engine.greeting.model_error, "", EDITOR))
    return engine


# --------------------------------------------------------------------------- pixels
def read_pixels(drawable, pixel_format: str, x: int = 0, y: int = 0, width: int | None = None,
                height: int | None = None, abyss=Gegl.AbyssPolicy.CLAMP) -> bytes:
    """Read a rectangle of a drawable (in its own coordinates) as bytes of the given babl format."""
    width = drawable.get_width() if width is None else width
    height = drawable.get_height() if height is None else height
    rect = Gegl.Rectangle.new(x, y, width, height)
    return bytes(drawable.get_buffer().get(rect, 1.0, pixel_format, abyss))


def engine_format(image, drawable) -> tuple[str, int, int]:
    """The babl format the layer is sent to the engine in, its channels and bits per channel:
    sRGB-encoded gray or RGB, with alpha when the layer has it, 8 bits for 8-bit (non-linear)
    images, else 16 (the engine's deepest PNG; nothing of an 8-bit layer is lost in 8 bits)."""
    gray = image.get_base_type() == Gimp.ImageBaseType.GRAY
    alpha = drawable.has_alpha()
    eight = image.get_precision() in [getattr(Gimp.Precision, name) for name in EIGHT_BIT]
    depth = 8 if eight else 16
    model = ("Y'" if gray else "R'G'B'") + ("A" if alpha else "")
    return f"{model} u{depth}", (1 if gray else 3) + alpha, depth


def alpha_keeper(image, drawable) -> str | None:
    """The format in which a changed pixel gets its alpha back exactly (None: the format sent to
    the engine holds the layer's alpha exactly, or it has none): 64-bit float holds any of GIMP's."""
    if not drawable.has_alpha() or image.get_precision() in [getattr(Gimp.Precision, name)
                                                             for name in SIXTEEN_BIT_AT_MOST]:
        return None
    return ("Y'A" if image.get_base_type() == Gimp.ImageBaseType.GRAY else "R'G'B'A") + " double"


def load_png_pixels(path: str, pixel_format: str, width: int, height: int) -> bytes:
    """Load a PNG the engine wrote (through GIMP's own loader) and return its pixels."""
    loaded = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(path))
    if loaded is None:
        raise SmileFailure(f"GIMP could not read the engine's output {path}")
    try:
        layers = loaded.get_layers()
        if (loaded.get_width(), loaded.get_height()) != (width, height) or not layers:
            raise SmileFailure(f"the Smile engine returned a {loaded.get_width()}×{loaded.get_height()} "
                               f"image for a {width}×{height} layer")
        return read_pixels(layers[0], pixel_format)
    finally:
        loaded.delete()


def write_pixels(drawable, pixel_format: str, pixels: bytes) -> None:
    """Replace all pixels of a drawable directly (not undoable: for a drawable made by this run)."""
    rect = Gegl.Rectangle.new(0, 0, drawable.get_width(), drawable.get_height())
    buffer = drawable.get_buffer()
    buffer.set(rect, pixel_format, pixels)
    buffer.flush()
    drawable.update(0, 0, drawable.get_width(), drawable.get_height())


def put_changes(source, target, pixel_format: str, pixels: bytes, runs, undoable: bool,
                keep_alpha: str | None = None) -> None:
    """Make ``target`` (``source`` itself, or a new layer of its size) an exact copy of ``source``
    in which only the pixels of ``runs`` (see :func:`changed_runs`) are replaced by those of
    ``pixels`` (the engine's result, in ``pixel_format``), converted by GIMP into the target's own
    format; ``keep_alpha`` (see :func:`alpha_keeper`): the format in which those pixels get their
    alpha back.  Undoable: through the shadow buffer (one undo step, within the selection)."""
    width, height = source.get_width(), source.get_height()
    rect = Gegl.Rectangle.new(0, 0, width, height)
    original = source.get_buffer()
    buffer = target.get_shadow_buffer() if undoable else target.get_buffer()
    original.copy(rect, Gegl.AbyssPolicy.NONE, buffer, rect)  # exact: the same precision
    pixel_size = len(pixels) // (width * height)
    alpha_size = 8  # keep_alpha is a "double" format: its alpha is the last 8 bytes of a pixel
    for y, x0, x1 in runs:
        start = (y * width + x0) * pixel_size
        run = Gegl.Rectangle.new(x0, y, x1 - x0, 1)
        buffer.set(run, pixel_format, pixels[start:start + (x1 - x0) * pixel_size])
        if keep_alpha:
            mixed = bytearray(buffer.get(run, 1.0, keep_alpha, Gegl.AbyssPolicy.NONE))
            alpha = bytes(original.get(run, 1.0, keep_alpha, Gegl.AbyssPolicy.NONE))
            stride = len(mixed) // (x1 - x0)
            for k in range(stride - alpha_size, stride):
                mixed[k::stride] = alpha[k::stride]
            buffer.set(run, keep_alpha, bytes(mixed))
    buffer.flush()
    if undoable:
        target.merge_shadow(True)
    target.update(0, 0, width, height)


def copy_rects(source: Gimp.Drawable, target: Gimp.Drawable,
               rects: list[tuple[int, int, int, int]]) -> None:
    """Copy the pixels of ``rects`` ((x, y, width, height) in the drawables' own coordinates) from
    ``source`` into ``target``, a drawable of the same size and format, exactly (not undoable)."""
    original, buffer = source.get_buffer(), target.get_buffer()
    for x, y, width, height in rects:
        rect = Gegl.Rectangle.new(x, y, width, height)
        original.copy(rect, Gegl.AbyssPolicy.NONE, buffer, rect)
    buffer.flush()
    target.update(0, 0, target.get_width(), target.get_height())


def own_mask(layer: Gimp.Layer) -> Gimp.LayerMask | None:
    """The layer's own layer mask where it hides something in the image (it is applied), else None."""
    mask = layer.get_mask()
    return mask if mask is not None and layer.get_apply_mask() else None


def mask_new_layer(layer: Gimp.Layer, source: Gimp.Layer, face_mask: bytes | None) -> None:
    """Give the new ``layer`` (the size of ``source``, at its place) a layer mask that hides what
    ``source``'s own layer mask hides, and, given ``face_mask`` (0 or 255 a pixel), what that hides:
    the face mask ANDed with the source's mask, or a copy of it, in the mask's own precision.
    Neither: no mask."""
    hiding = own_mask(source)
    if face_mask is None and hiding is None:
        return
    width, height = layer.get_width(), layer.get_height()
    channel = layer.create_mask(Gimp.AddMaskType.BLACK)
    layer.add_mask(channel)
    if hiding is None:
        write_pixels(channel, MASK_IN, face_mask)
    elif face_mask is None:
        copy_rects(hiding, channel, [(0, 0, width, height)])
    else:  # the source's mask where the face mask shows (the runs where it is not 0), 0 elsewhere
        shown = changed_runs(bytes(len(face_mask)), face_mask, width, height, 1)
        copy_rects(hiding, channel, [(x0, y, x1 - x0, 1) for y, x0, x1 in shown])


def shown_pixels(data: bytes, pixel_size: int, width: int, shown) -> bytes:
    """The pixels of ``data`` (rows of ``width`` pixels of ``pixel_size`` bytes) inside the runs
    ``shown`` (see :func:`changed_runs`), one after the other; all of them if ``shown`` is None."""
    if shown is None:
        return data
    return b"".join(data[(y * width + x0) * pixel_size:(y * width + x1) * pixel_size] for y, x0, x1 in shown)


def stacks_like_in_place(drawable, source: bytes, pixel_size: int, depth: int, shown) -> bool:
    """Does a new layer on top of ``drawable`` (Normal, 100 %, with its alpha and its own mask, showing
    only the runs ``shown``, or all of it if None) make the image look exactly as the edit in place
    would?  Only where the drawable blends Normally at full opacity and, wherever the new layer
    shows, covers each pixel fully or not at all (alpha and own mask 0 or full): a second layer at
    50 % adds half again, Multiply multiplies twice.  ``source``: its pixels as sent to the engine
    (alpha last, ``depth`` bits)."""
    if drawable.get_opacity() < 100.0 \
            or not plain_mode(drawable) \
            or drawable.get_composite_mode() not in [getattr(Gimp.LayerCompositeMode, name)
                                                     for name in PLAIN_COMPOSITE]:
        return False
    width = drawable.get_width()
    full = b"\xff" * (depth // 8)
    if drawable.has_alpha() and partly_transparent(shown_pixels(source, pixel_size, width, shown), pixel_size,
                                                   pixel_size - len(full), full):
        return False
    hiding = own_mask(drawable)
    return hiding is None or not partly_transparent(
        shown_pixels(read_pixels(hiding, MASK_DEEP), 2, width, shown), 2, 0, b"\xff\xff")


def replacing_layer(image, source: Gimp.Layer, name: str, kind) -> Gimp.Layer:
    """A new layer of ``source``'s size that takes its place in the image: its blending (mode,
    opacity, blend and composite space, composite mode) and a copy of its own layer mask, added
    by :func:`mask_new_layer` once it is in the image."""
    mode = Gimp.LayerMode.NORMAL if source.get_mode() == Gimp.LayerMode.PASS_THROUGH else source.get_mode()
    layer = Gimp.Layer.new(image, name, source.get_width(), source.get_height(), kind, source.get_opacity(), mode)
    layer.set_blend_space(source.get_blend_space())
    layer.set_composite_space(source.get_composite_space())
    layer.set_composite_mode(source.get_composite_mode())
    return layer


def drawable_offsets(drawable) -> tuple[int, int]:
    """The drawable's position in the image (GIMP 3.0 returns (ok, x, y))."""
    offsets = drawable.get_offsets()
    return int(offsets[-2]), int(offsets[-1])


def layer_name(strength: float) -> str:
    """Name of the result layer, e.g. 'Smile (λ=1.0)'."""
    return f"Smile (λ={round(strength, 2)})"


# --------------------------------------------------------------------------- the filter
def smile_drawable(engine: EngineProcess, image, drawable, strength: float, faces: str,
                   new_layer: bool, layer_mask: bool) -> None:
    """Run the engine on one layer and put the result into the image (one undo step)."""
    width, height = drawable.get_width(), drawable.get_height()
    off_x, off_y = drawable_offsets(drawable)
    with_selection = not Gimp.Selection.is_empty(image)
    pixel_format, channels, depth = engine_format(image, drawable)

    Gimp.progress_update(0.05)
    with tempfile.TemporaryDirectory(prefix="smile-gimp-") as folder:
        source = read_pixels(drawable, pixel_format)
        request = {"cmd": "smile", "input": os.path.join(folder, "input.png"),
                   "output": os.path.join(folder, "output.png"),
                   "mask_output": os.path.join(folder, "mask.png"),
                   "strength": float(strength), "faces": faces}
        write_png(request["input"], width, height, channels, source, depth)
        if with_selection:
            selection = read_pixels(image.get_selection(), MASK_IN, off_x, off_y, width, height,
                                    Gegl.AbyssPolicy.NONE)
            if not new_layer:  # in place, GIMP merges the result through the selection: its feather once, there
                selection = selection.translate(SELECTED)
            request["selection"] = os.path.join(folder, "selection.png")
            write_png(request["selection"], width, height, 1, selection)
        Gimp.progress_update(0.1)

        reply = engine.request(Gimp.progress_pulse, request)
        if not reply.get("ok"):
            place = "inside the selection" if with_selection else "in this layer"
            hide = {request["input"]: "the layer", request.get("selection", ""): "the selection"}
            raise SmileFailure(explain(reply.get("error") or {}, place, EDITOR, hide))
        faces = reply.get("faces") or []
        if faces and not any(f.get("edited") for f in faces):
            # nothing changed (e.g. every face already smiles that much): say why, add no layer
            reasons = sorted({f.get("reason") for f in faces if f.get("reason")})
            raise SmileFailure("no face was changed" + (f": {'; '.join(reasons)}" if reasons else ""))
        Gimp.progress_update(0.9)
        result = load_png_pixels(request["output"], pixel_format, width, height)
        # Only the pixels the engine changed are written back; all others keep their exact value
        # in the layer's own format (which the PNG, sRGB and at most 16 bits, may not hold).
        runs = changed_runs(source, result, width, height, len(source) // (width * height))
        mask = None
        if new_layer and layer_mask:
            # A layer mask of "where it changed": the feathered mask the engine edited through,
            # and every changed pixel, so the composite is exactly the engine's result.
            mask = bytearray(width * height)
            if os.path.isfile(request["mask_output"]):
                mask[:] = load_png_pixels(request["mask_output"], MASK_FILE, width, height).translate(MASK_COVER)
            for y, x0, x1 in runs:
                mask[y * width + x0:y * width + x1] = b"\xff" * (x1 - x0)
        # A layer on top that would not look like the edit in place takes the source's place instead.
        replace = new_layer and not stacks_like_in_place(
            drawable, source, len(source) // (width * height), depth,
            None if mask is None else changed_runs(bytes(len(mask)), bytes(mask), width, height, 1))
        if replace and drawable.get_lock_visibility():
            raise SmileFailure(f"the new layer must take the place of '{drawable.get_name()}' and hide it (see the "
                               "manual), but its visibility is locked: unlock it in the Layers dialog, or turn off "
                               "\"Result on a new layer\".")
    del source

    image.undo_group_start()
    try:
        if new_layer:
            kind = (Gimp.ImageType.GRAYA_IMAGE if image.get_base_type() == Gimp.ImageBaseType.GRAY
                    else Gimp.ImageType.RGBA_IMAGE)
            layer = (replacing_layer(image, drawable, layer_name(strength), kind) if replace else
                     Gimp.Layer.new(image, layer_name(strength), width, height, kind, 100.0,
                                    Gimp.LayerMode.NORMAL))
            image.insert_layer(layer, drawable.get_parent(), image.get_item_position(drawable))
            try:
                layer.set_offsets(off_x, off_y)
                put_changes(drawable, layer, pixel_format, result, runs, undoable=False,
                            keep_alpha=alpha_keeper(image, drawable))
                # (over a source whose own mask hides part of it, the new layer hides that part too;
                # one that replaces it shows all that it showed: no face mask)
                mask_new_layer(layer, drawable, None if mask is None or replace else bytes(mask))
                if replace:
                    drawable.set_visible(False)  # (undone with the rest)
            except Exception:
                image.remove_layer(layer)  # no half-made layer is left
                raise
        elif runs:
            put_changes(drawable, drawable, pixel_format, result, runs, undoable=True,
                        keep_alpha=alpha_keeper(image, drawable))
    finally:
        image.undo_group_end()
    Gimp.progress_update(1.0)
    Gimp.displays_flush()


def run_dialog(procedure, config, slider: StrengthSlider | None) -> bool:
    """Show the Smile… dialog, its strength slider spanning the model's range; True if accepted."""
    gi.require_version("GimpUi", "3.0")
    from gi.repository import GimpUi
    GimpUi.init(PROCEDURE_NAME)
    if slider is not None:  # (the last value used, moved into this model's range)
        config.set_property("strength", slider.default)
    dialog = GimpUi.ProcedureDialog(procedure=procedure, config=config)
    scale = dialog.get_widget("strength", GimpUi.SpinScale.__gtype__)  # a slider, not a spin button
    if slider is not None:
        scale.set_range(slider.low, slider.high)
        scale.set_increments(0.1, 1.0)
    dialog.fill(["strength", "faces", "new-layer", "layer-mask"])
    accepted = dialog.run()
    dialog.destroy()
    return bool(accepted)


def run_smile(procedure, run_mode, image, drawables, config, data):
    """The procedure's run function (GIMP 3.0 ImageProcedure signature)."""
    engine = None
    try:
        drawables = [source_layer(drawables)]
        if image.get_base_type() == Gimp.ImageBaseType.INDEXED:
            # (the menu entry is off for them; a script may still call the procedure)
            raise SmileFailure("indexed images are not supported: convert the image with "
                               "Image ▸ Mode ▸ RGB (or Grayscale) first.")
        Gimp.progress_init("Smile…")
        engine = open_engine()  # before the dialog: its slider is the model's range
        if run_mode == Gimp.RunMode.INTERACTIVE and not run_dialog(
                procedure, config, strength_slider(engine.greeting, config.get_property("strength"))):
            return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
        check_source(image, drawables[0], config.get_property("new-layer"))
        smile_drawable(engine, image, drawables[0], config.get_property("strength"),
                       config.get_property("faces"), config.get_property("new-layer"),
                       config.get_property("layer-mask"))
    except OSError as failure:  # the temporary folder: full or not writable
        message = (f"Smile: could not use a temporary folder ({failure.strerror or failure}); "
                   "free some disk space or set TMPDIR to a writable folder.")
        return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR, GLib.Error(message))
    except (SmileFailure, EngineProblem) as failure:
        # GIMP shows the returned error in its message area (and on the console in batch runs).
        message = f"Smile: {failure}"
        return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR, GLib.Error(message))
    finally:
        if engine is not None:
            engine.close()
    return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())


class Smile(Gimp.PlugIn):
    """Registers Filters ▸ Smile…"""

    def do_query_procedures(self):
        return [PROCEDURE_NAME]

    def do_set_i18n(self, name):
        return False, None, None  # no translations yet

    def do_create_procedure(self, name):
        procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run_smile, None)
        procedure.set_image_types("RGB*, GRAY*")
        procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
        procedure.set_menu_label("Smile…")
        procedure.add_menu_path("<Image>/Filters")
        procedure.set_documentation(
            "Make the faces in a photo smile",
            "Edits the faces in the active layer (only those inside the selection, if any) with "
            "the offline Smile engine, on a new layer by default.",
            name)
        procedure.set_attribution("Smile contributors", "Smile contributors", "2026")
        procedure.add_double_argument("strength", "S_trength",
                                      "How much to smile (0: unchanged, negative: frown), "
                                      "within the range of the engine's model",
                                      -STRENGTH_BOUND, STRENGTH_BOUND, 1.0,
                                      GObject.ParamFlags.READWRITE)
        choice = Gimp.Choice.new()
        choice.add("all", 0, "All faces", "")
        choice.add("largest", 1, "Largest face only", "")
        procedure.add_choice_argument("faces", "_Faces", "Which faces to edit", choice, "all",
                                      GObject.ParamFlags.READWRITE)
        procedure.add_boolean_argument("new-layer", "Result on a _new layer",
                                       "Put the result on a new layer above the source",
                                       True, GObject.ParamFlags.READWRITE)
        procedure.add_boolean_argument("layer-mask", "Add the face _mask as layer mask",
                                       "Give the new layer a mask of the edited area, to paint on",
                                       True, GObject.ParamFlags.READWRITE)
        return procedure


Gimp.main(Smile.__gtype__, sys.argv)
