# python-fu-eval batch script for tests/test_gimp_host.py (runs inside gimp-console-3.0).
# Reads the job JSON named by $SMILE_GIMP_JOB:
#   {"procedure": "plug-in-smile", "report": "<path>",
#    "cases": [{"name", "input", "dump": "<folder>", "args": {...}, "select": [x, y, w, h] | null,
#               "crop_layer": [x, y, w, h] | null, "interactive": false}]}
# For each case: load the image, optionally crop its layer to a smaller one at an offset and
# select a rectangle (image coordinates), run the procedure
# non-interactively on the first layer, dump every layer (and layer mask) as raw bytes
# (R'G'B'A u8 / Y u8) and describe the outcome in the report JSON.
import json
import os

import gi
gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, Gio

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


def describe(image, folder, tag):
    layers = []
    for number, layer in enumerate(image.get_layers()):
        offsets = layer.get_offsets()
        entry = {"name": layer.get_name(), "width": layer.get_width(), "height": layer.get_height(),
                 "offsets": [offsets[-2], offsets[-1]], "mask": layer.get_mask() is not None,
                 "pixels": os.path.join(folder, f"{tag}-layer{number}.rgba")}
        dump(layer, entry["pixels"], "R'G'B'A u8")
        if entry["mask"]:
            entry["mask_pixels"] = os.path.join(folder, f"{tag}-layer{number}-mask.gray")
            dump(layer.get_mask(), entry["mask_pixels"], "Y u8")
        layers.append(entry)
    return layers


for case in job["cases"] if proc is not None else []:
    os.makedirs(case["dump"], exist_ok=True)
    image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(case["input"]))
    if case.get("crop_layer"):
        x, y, w, h = case["crop_layer"]
        image.get_layers()[0].resize(w, h, -x, -y)
    if case.get("select"):
        image.select_rectangle(Gimp.ChannelOps.REPLACE, *case["select"])
    before = describe(image, case["dump"], "before")
    config = proc.create_config()
    mode = Gimp.RunMode.INTERACTIVE if case.get("interactive") else Gimp.RunMode.NONINTERACTIVE
    config.set_property("run-mode", mode)
    config.set_property("image", image)
    config.set_core_object_array("drawables", [image.get_layers()[0]])
    for name, value in case.get("args", {}).items():
        config.set_property(name, value)
    result = proc.run(config)
    status = result.index(0)
    report["cases"][case["name"]] = {
        "status": status.value_nick if hasattr(status, "value_nick") else str(status),
        "success": status == Gimp.PDBStatusType.SUCCESS,
        "error": pdb.get_last_error() if hasattr(pdb, "get_last_error") else None,
        "before": before, "after": describe(image, case["dump"], "after"),
    }
    image.delete()

with open(job["report"], "w") as handle:
    json.dump(report, handle, indent=1)
