# python-fu-eval batch script for tests/test_gimp_host.py (runs inside gimp-console-3.0).
# Reads the job JSON named by $SMILE_GIMP_JOB:
#   {"procedure": "plug-in-smile", "report": "<path>",
#    "cases": [{"name", "input", "dump": "<folder>", "args": {...}, "select": [x, y, w, h] | null,
#               "crop_layer": [x, y, w, h] | null, "interactive": false,
#               "mode": "gray" | "indexed" | null, "precision": "U16_LINEAR" (a Gimp.Precision) | null,
#               "group": true | null,
#               "hdr": [x, y, w, h, [values...]] | null, "profile": "<ICC file>" | null,
#               "hide": [x, y, w, h] or [x, y, w, h, value] | null, "projection": true | null,
#               "below": [r, g, b] (0..1) | null, "opacity": 0..100 | null, "layer_mode": "MULTIPLY"
#               (a Gimp.LayerMode) | null, "hidden": true | null, "group_mode": "PASS_THROUGH" | null,
#               "drawables": "mask" | "two" | "channel" | null, "undo": true | null,
#               "ellipse": true | null, "feather": radius | null, "offsets": [x, y] | null,
#               "lock_visibility": true | null, "group_hidden": true | null, "floating": true | null,
#               "group_opacity": 0..100 | null}]}
# For each case: load the image, optionally convert its mode, assign it a colour profile, convert
# its precision, write float values (beyond 0..1: HDR) into a rectangle of its layer, move the
# layer into a layer group, crop it to a smaller one at an offset, give it a layer mask of its own
# that hides a rectangle ("hide", image coordinates; with a value 1..254, partly) and select a
# rectangle (image coordinates), run the procedure non-interactively on that layer, dump every
# layer (and layer mask) as raw bytes (R'G'B'A u8 / Y u8, and the layer's own format: "native")
# and describe the outcome in the report JSON.  "below" puts an opaque layer of that colour under the
# layer; "opacity", "layer_mode" and "hidden" set the layer's own; "group_mode" (with "group") sets
# the group's mode, and the procedure runs on the group.  "drawables" runs it on the layer's mask
# (give it one with "hide"), on the layer and a copy of it, or on a new channel instead.  "undo" (in
# the full interface: run_gimp.sh --gui) shows the image in a window, and after the run presses
# Ctrl+Z there, then Ctrl+Y, and describes the image after each ("undone", "redone").  "ellipse"
# selects the "select" rectangle's ellipse instead, "feather" feathers the selection ([] for
# "select": select all, then none), "offsets" moves the layer; the selection is dumped
# ("selection": Y u8, the image's size).  "group_hidden" (with "group") hides the group, "group_opacity" sets its opacity; "floating" pastes a
# copy of the layer's top left quarter onto it as a floating selection (not described).  With "group",
# the layers described are the group's.  With "projection", the
# image as shown (R'G'B'A u8) is dumped too, before and after.
import json
import os
import struct
import subprocess
import time

import gi
gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
gi.require_version("Babl", "0.1")
from gi.repository import Babl, Gegl, Gimp, Gio

job = json.load(open(os.environ["SMILE_GIMP_JOB"]))
pdb = Gimp.get_pdb()
proc = pdb.lookup_procedure(job["procedure"])
report = {"found": proc is not None, "cases": {}}
if proc is not None:
    report["menu_label"] = proc.get_menu_label()
    report["menu_paths"] = list(proc.get_menu_paths())
    report["arguments"] = [spec.get_name() for spec in proc.get_arguments()]


def dump(drawable, path, fmt):
    rect = Gegl.Rectangle.new(0, 0, drawable.get_width(), drawable.get_height())
    data = drawable.get_buffer().get(rect, 1.0, fmt, Gegl.AbyssPolicy.CLAMP)
    with open(path, "wb") as handle:
        handle.write(bytes(data))


def projection(image, folder, tag):
    """Dump the image as GIMP shows it (its layers composited through their masks)."""
    visible = Gimp.Layer.new_from_visible(image, image, "projection")
    path = os.path.join(folder, f"{tag}-projection.rgba")
    dump(visible, path, "R'G'B'A u8")
    visible.delete()
    return {"pixels": path, "width": image.get_width(), "height": image.get_height()}


def describe(image, folder, tag, group=False):
    layers = []
    top = image.get_layers()
    for number, layer in enumerate(top[0].get_children() if group else [item for item in top
                                                                         if not item.is_floating_sel()]):
        offsets = layer.get_offsets()
        fmt = layer.get_format()
        entry = {"name": layer.get_name(), "width": layer.get_width(), "height": layer.get_height(),
                 "offsets": [offsets[-2], offsets[-1]], "mask": layer.get_mask() is not None,
                 "pixels": os.path.join(folder, f"{tag}-layer{number}.rgba"),
                 "native": os.path.join(folder, f"{tag}-layer{number}.native"),
                 "format": Babl.format_get_encoding(fmt), "components": Babl.format_get_n_components(fmt),
                 "top_level": len(top), "visible": layer.get_visible(), "opacity": layer.get_opacity(),
                 "layer_mode": layer.get_mode().value_name.split("_MODE_", 1)[-1]}
        dump(layer, entry["pixels"], "R'G'B'A u8")
        dump(layer, entry["native"], None)
        if entry["mask"]:
            entry["mask_pixels"] = os.path.join(folder, f"{tag}-layer{number}-mask.gray")
            dump(layer.get_mask(), entry["mask_pixels"], "Y u8")
        layers.append(entry)
    return layers


def state(image):
    return [(layer.get_name(), layer.get_visible()) for layer in image.get_layers()]


def press(image, keys):
    """Press ``keys`` in the image's window (xdotool) and wait until GIMP has changed its layers."""
    pattern = f"[-]{image.get_id()}[.][0-9]* [(]"  # the window title: "*[Untitled]-3.0 (RGB colour …"
    for _ in range(100):
        found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", pattern],
                               capture_output=True, text=True).stdout.split()
        if found:
            break
        time.sleep(0.2)
    else:
        raise SystemExit(f"no window of image {image.get_id()} appeared")
    was = state(image)
    subprocess.run(["xdotool", "windowfocus", found[-1]], check=False)
    subprocess.run(["xdotool", "key", "--window", found[-1], keys], check=True)
    for _ in range(100):
        if state(image) != was:
            break
        time.sleep(0.1)


for case in job["cases"] if proc is not None else []:
    os.makedirs(case["dump"], exist_ok=True)
    image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(case["input"]))
    if case.get("mode") == "gray":
        image.convert_grayscale()
    elif case.get("mode") == "indexed":
        image.convert_indexed(Gimp.ConvertDitherType.NONE, Gimp.ConvertPaletteType.GENERATE, 255,
                              False, False, "")
    if case.get("profile"):  # assigned (the pixels keep their values)
        image.set_color_profile(Gimp.ColorProfile.new_from_file(Gio.File.new_for_path(case["profile"])))
    if case.get("precision"):
        image.convert_precision(getattr(Gimp.Precision, case["precision"]))
    layer = image.get_layers()[0]
    if case.get("hdr"):
        x, y, w, h, values = case["hdr"]
        fmt = ("Y" if image.get_base_type() == Gimp.ImageBaseType.GRAY else "RGB") \
            + ("A" if layer.has_alpha() else "") + " float"
        n = Babl.format_get_n_components(Babl.format(fmt))
        colours = n - layer.has_alpha()  # the values go to the colour channels in turn; alpha 1
        floats = [values[(i // n * colours + i % n) % len(values)] if i % n < colours else 1.0
                  for i in range(w * h * n)]
        buffer = layer.get_buffer()
        buffer.set(Gegl.Rectangle.new(x, y, w, h), fmt, struct.pack(f"={len(floats)}f", *floats))
        buffer.flush()
    if case.get("below"):
        under = Gimp.Layer.new(image, "Below", image.get_width(), image.get_height(), Gimp.ImageType.RGB_IMAGE,
                               100.0, Gimp.LayerMode.NORMAL)
        image.insert_layer(under, None, 1)
        Gimp.context_set_foreground(Gegl.Color.new("rgb({}, {}, {})".format(*case["below"])))
        under.fill(Gimp.FillType.FOREGROUND)
    if case.get("opacity") is not None:
        layer.set_opacity(case["opacity"])
    if case.get("layer_mode"):
        layer.set_mode(getattr(Gimp.LayerMode, case["layer_mode"]))
    if case.get("hidden"):
        layer.set_visible(False)
    if case.get("lock_visibility"):
        layer.set_lock_visibility(True)
    in_group = bool(case.get("group"))
    if in_group:
        group = Gimp.GroupLayer.new(image, "Group")
        image.insert_layer(group, None, 0)
        image.reorder_item(layer, group, 0)
        if case.get("group_mode"):
            group.set_mode(getattr(Gimp.LayerMode, case["group_mode"]))
        if case.get("group_opacity") is not None:
            group.set_opacity(case["group_opacity"])
        if case.get("group_hidden"):
            group.set_visible(False)
    if case.get("crop_layer"):
        x, y, w, h = case["crop_layer"]
        layer.resize(w, h, -x, -y)
    if case.get("hide"):  # a layer mask of the layer's own: white, black (or the value) in the rectangle
        x, y, w, h, value = (case["hide"] + [0])[:5]
        off_x, off_y = layer.get_offsets()[-2:]
        own = layer.create_mask(Gimp.AddMaskType.WHITE)
        layer.add_mask(own)
        own.get_buffer().set(Gegl.Rectangle.new(x - off_x, y - off_y, w, h), "Y u8", bytes([value]) * (w * h))
        own.get_buffer().flush()
        own.update(0, 0, own.get_width(), own.get_height())
    if case.get("offsets"):
        layer.set_offsets(*case["offsets"])
    if case.get("select") == []:
        image.select_rectangle(Gimp.ChannelOps.REPLACE, 0, 0, image.get_width(), image.get_height())
        Gimp.Selection.none(image)
    elif case.get("select"):
        (image.select_ellipse if case.get("ellipse") else image.select_rectangle)(Gimp.ChannelOps.REPLACE,
                                                                                  *case["select"])
    if case.get("feather"):
        Gimp.Selection.feather(image, case["feather"])
    selection = None
    if case.get("select") is not None:
        selection = os.path.join(case["dump"], "selection.gray")
        dump(image.get_selection(), selection, "Y u8")
    if case.get("floating"):
        image.select_rectangle(Gimp.ChannelOps.REPLACE, 0, 0, layer.get_width() // 2, layer.get_height() // 2)
        Gimp.edit_copy([layer])
        Gimp.edit_paste(layer, False)
        Gimp.Selection.none(image)
    display = Gimp.Display.new(image) if case.get("undo") else None
    before = describe(image, case["dump"], "before", in_group)
    shown = projection(image, case["dump"], "before") if case.get("projection") else None
    config = proc.create_config()
    mode = Gimp.RunMode.INTERACTIVE if case.get("interactive") else Gimp.RunMode.NONINTERACTIVE
    config.set_property("run-mode", mode)
    config.set_property("image", image)
    drawables = [group if case.get("group_mode") else layer]
    if case.get("drawables") == "mask":
        drawables = [layer.get_mask()]
    elif case.get("drawables") == "two":
        twin = layer.copy()
        image.insert_layer(twin, None, 0)
        drawables.append(twin)
    elif case.get("drawables") == "channel":
        channel = Gimp.Channel.new(image, "Spot", image.get_width(), image.get_height(), 50.0,
                                   Gegl.Color.new("black"))
        image.insert_channel(channel, None, 0)
        drawables = [channel]
    config.set_core_object_array("drawables", drawables)
    for name, value in case.get("args", {}).items():
        config.set_property(name, value)
    result = proc.run(config)
    status = result.index(0)
    report["cases"][case["name"]] = {
        "status": status.value_nick if hasattr(status, "value_nick") else str(status),
        "success": status == Gimp.PDBStatusType.SUCCESS,
        "error": pdb.get_last_error() if hasattr(pdb, "get_last_error") else None,
        "before": before, "after": describe(image, case["dump"], "after", in_group),
        "selection": selection,
    }
    if display is not None:
        for keys, tag in (("ctrl+z", "undone"), ("ctrl+y", "redone")):
            press(image, keys)
            report["cases"][case["name"]][tag] = describe(image, case["dump"], tag, in_group)
        display.delete()
    if shown:
        report["cases"][case["name"]]["projection"] = {
            "before": shown, "after": projection(image, case["dump"], "after")}
    image.delete()

with open(job["report"], "w") as handle:
    json.dump(report, handle, indent=1)
