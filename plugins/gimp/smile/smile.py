#!/usr/bin/env python3
"""Smile for GIMP 3: make the faces in a photo smile (Filters ▸ Smile…).

This plug-in needs only GIMP's ``gi`` bindings and the Python standard library.  The
image work is done by the Smile engine running in its own process (its own Python), so
GIMP's Python version never matters.  The engine is found, in this order, through:

1. the environment variable ``SMILE_ENGINE``: path of the ``smile`` program;
2. ``smile-engine.json`` next to this file, written by ``smile install-plugin gimp``:
   ``{"command": [".../bin/smile", "worker"], "python": ..., "version": ...}``;
3. a ``smile`` program on ``PATH``.

The plug-in talks to ``smile worker`` (one JSON object per line, see the project's
docs/worker-protocol.md); pixels travel as PNG files in a private temporary folder.
"""
from __future__ import annotations

import collections
import json
import os
import queue
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, Gio, GLib, GObject  # noqa: E402

PROCEDURE_NAME = "plug-in-smile"
PROTOCOL = 1
INSTALL_HINT = "pip install /path/to/smile && smile install-plugin gimp (/path/to/smile: the Smile project folder, or its wheel)"
ENGINE_FILE = "smile-engine.json"
RGBA = "R'G'B'A u8"      # sRGB-encoded 8-bit, what the engine expects in a PNG
MASK_IN = "Y u8"         # selection / layer-mask coverage, 0..255
MASK_FILE = "Y' u8"      # an 8-bit grayscale PNG as GIMP loads it (bytes as stored)
GREETING_TIMEOUT_S = 300.0
MASK_COVER = bytes([0] + [255] * 255)  # byte table: any change → fully shown


class SmileFailure(Exception):
    """A problem with a one-line message meant for the person using GIMP."""


# --------------------------------------------------------------------------- engine
def find_engine() -> list[str]:
    """Return the command line that starts ``smile worker``.

    Raises SmileFailure (with the command that fixes it) when no engine is installed.
    """
    override = os.environ.get("SMILE_ENGINE", "").strip()
    if override:
        if not os.path.isfile(override):
            raise SmileFailure(f"SMILE_ENGINE is set to {override!r}, which is not a file. "
                               "Point it at the `smile` program, or unset it.")
        return [override, "worker"]
    record = os.path.join(os.path.dirname(os.path.abspath(__file__)), ENGINE_FILE)
    if os.path.isfile(record):
        try:
            with open(record, encoding="utf-8") as handle:
                command = json.load(handle)["command"]
            if not (isinstance(command, list) and command
                    and all(isinstance(part, str) for part in command)):
                raise ValueError("'command' is not a list of strings")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SmileFailure(f"{record} is unreadable ({exc}). Reinstall with: {INSTALL_HINT}")
        if not os.path.isfile(command[0]):
            raise SmileFailure(f"the Smile engine recorded in {record} ({command[0]}) is gone. "
                               f"Reinstall with: {INSTALL_HINT}")
        return command
    found = shutil.which("smile")
    if found:
        return [found, "worker"]
    raise SmileFailure(f"the Smile engine is not installed. Install it with: {INSTALL_HINT}")


def engine_environment() -> dict[str, str]:
    """GIMP's environment minus the variables that would point the engine at GIMP's Python."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONEXECUTABLE"):
        env.pop(name, None)
    return env


class Worker:
    """A running ``smile worker`` process, spoken to with one JSON object per line."""

    def __init__(self, command: list[str]):
        try:
            self.process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                encoding="utf-8", errors="replace", bufsize=1, env=engine_environment(),
                creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
        except OSError as exc:
            raise SmileFailure(f"could not start the Smile engine {command[0]} ({exc.strerror or exc}). "
                               f"Reinstall with: {INSTALL_HINT}")
        self.lines: queue.Queue = queue.Queue()
        self.stderr_tail: collections.deque = collections.deque(maxlen=20)
        threading.Thread(target=self._pump_stdout, daemon=True).start()
        threading.Thread(target=self._pump_stderr, daemon=True).start()
        self.next_id = 0

    def _pump_stdout(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _pump_stderr(self) -> None:
        for line in self.process.stderr:
            if line.strip():
                self.stderr_tail.append(line.strip())

    def crashed(self) -> SmileFailure:
        """The failure to report when the engine stopped answering."""
        try:
            status = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            status = None
        time.sleep(0.1)  # let the stderr reader catch the last words
        last = self.stderr_tail[-1] if self.stderr_tail else "no message"
        return SmileFailure(f"the Smile engine stopped unexpectedly (exit status {status}): {last}")

    def receive(self, tick, timeout: float | None = None) -> dict:
        """Wait for the next protocol line, calling ``tick()`` about 10 times a second."""
        start = time.monotonic()
        while True:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                tick()
                if timeout is not None and time.monotonic() - start > timeout:
                    self.close()
                    raise SmileFailure(f"the Smile engine did not answer within {timeout:.0f} s")
                continue
            if line is None:
                raise self.crashed()
            try:
                message = json.loads(line)
            except ValueError:
                continue  # not a protocol line; the worker should not print those
            if isinstance(message, dict):
                return message

    def request(self, tick, **fields) -> dict:
        """Send one request and return its reply."""
        self.next_id += 1
        fields["id"] = self.next_id
        try:
            self.process.stdin.write(json.dumps(fields) + "\n")
            self.process.stdin.flush()
        except OSError:
            raise self.crashed()
        while True:
            reply = self.receive(tick)
            if reply.get("id") == self.next_id:
                return reply

    def close(self) -> None:
        """Ask the worker to quit; kill it if it does not."""
        try:
            if self.process.poll() is None:
                self.process.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.process.stdin.flush()
                self.process.stdin.close()
                self.process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()


def start_worker(tick) -> Worker:
    """Start the engine and check its greeting."""
    worker = Worker(find_engine())
    greeting = worker.receive(tick, timeout=GREETING_TIMEOUT_S)
    if greeting.get("event") != "ready":
        worker.close()
        raise SmileFailure(f"the Smile engine sent an unexpected greeting: {json.dumps(greeting)[:200]}")
    if greeting.get("protocol") != PROTOCOL:
        worker.close()
        raise SmileFailure(f"the Smile engine speaks protocol {greeting.get('protocol')}, this plug-in "
                           f"speaks {PROTOCOL}. Update both with: pip install -U /path/to/smile "
                           "&& smile install-plugin gimp")
    return worker


def explain(error: dict, with_selection: bool) -> str:
    """Turn a worker error object into a message for the person using GIMP."""
    code = error.get("code", "internal")
    text = " ".join(str(error.get("message", "")).split())
    if code == "no_face":
        where = "inside the selection" if with_selection else "in this layer"
        return (f"no face found {where}. Smile needs a face seen roughly from the front; "
                "try a larger image or select the whole face.")
    if code == "model":
        return f"the Smile engine's model is not usable: {text}. Reinstall with: {INSTALL_HINT}"
    if code in ("bad_input", "too_large"):
        return f"the Smile engine refused the image: {text}"
    return f"the Smile engine failed ({code}): {text}"


# --------------------------------------------------------------------------- pixels
def write_png(path: str, width: int, height: int, channels: int, pixels: bytes) -> None:
    """Write 8-bit gray (1), gray+alpha (2), RGB (3) or RGBA (4) pixels as a PNG file."""
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    stride = width * channels
    view = memoryview(pixels)
    raw = b"".join(b"\x00" + view[row * stride:(row + 1) * stride] for row in range(height))

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))

    with open(path, "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n")
        handle.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)))
        handle.write(chunk(b"IDAT", zlib.compress(raw, 3)))
        handle.write(chunk(b"IEND", b""))


def read_pixels(drawable, pixel_format: str, x: int = 0, y: int = 0, width: int | None = None,
                height: int | None = None, abyss=Gegl.AbyssPolicy.CLAMP) -> bytes:
    """Read a rectangle of a drawable (in its own coordinates) as bytes of the given babl format."""
    width = drawable.get_width() if width is None else width
    height = drawable.get_height() if height is None else height
    rect = Gegl.Rectangle.new(x, y, width, height)
    return bytes(drawable.get_buffer().get(rect, 1.0, pixel_format, abyss))


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


def write_pixels(drawable, pixel_format: str, pixels: bytes, undoable: bool) -> None:
    """Replace all pixels of a drawable; through the shadow buffer (undoable) or directly."""
    rect = Gegl.Rectangle.new(0, 0, drawable.get_width(), drawable.get_height())
    if undoable:
        shadow = drawable.get_shadow_buffer()
        shadow.set(rect, pixel_format, pixels)
        shadow.flush()
        drawable.merge_shadow(True)
    else:
        buffer = drawable.get_buffer()
        buffer.set(rect, pixel_format, pixels)
        buffer.flush()
    drawable.update(0, 0, drawable.get_width(), drawable.get_height())


def drawable_offsets(drawable) -> tuple[int, int]:
    """The drawable's position in the image (GIMP 3.0 returns (ok, x, y))."""
    offsets = drawable.get_offsets()
    return int(offsets[-2]), int(offsets[-1])


def layer_name(strength: float) -> str:
    """Name of the result layer, e.g. 'Smile (λ=1.0)'."""
    return f"Smile (λ={round(strength, 2)})"


# --------------------------------------------------------------------------- the filter
def smile_drawable(image, drawable, strength: float, faces: str, new_layer: bool,
                   layer_mask: bool) -> None:
    """Run the engine on one layer and put the result into the image (one undo step)."""
    width, height = drawable.get_width(), drawable.get_height()
    off_x, off_y = drawable_offsets(drawable)
    with_selection = not Gimp.Selection.is_empty(image)

    Gimp.progress_init("Smile…")
    Gimp.progress_update(0.05)
    with tempfile.TemporaryDirectory(prefix="smile-gimp-") as folder:
        source = read_pixels(drawable, RGBA)
        request = {"cmd": "smile", "input": os.path.join(folder, "input.png"),
                   "output": os.path.join(folder, "output.png"),
                   "mask_output": os.path.join(folder, "mask.png"),
                   "strength": float(strength), "faces": faces}
        write_png(request["input"], width, height, 4, source)
        if with_selection:
            selection = read_pixels(image.get_selection(), MASK_IN, off_x, off_y, width, height,
                                    Gegl.AbyssPolicy.NONE)
            request["selection"] = os.path.join(folder, "selection.png")
            write_png(request["selection"], width, height, 1, selection)
        Gimp.progress_update(0.1)

        worker = start_worker(Gimp.progress_pulse)
        try:
            reply = worker.request(Gimp.progress_pulse, **request)
        finally:
            worker.close()
        if not reply.get("ok"):
            raise SmileFailure(explain(reply.get("error") or {}, with_selection))
        Gimp.progress_update(0.9)
        result = load_png_pixels(request["output"], RGBA, width, height)
        mask = None
        if new_layer and layer_mask and os.path.isfile(request["mask_output"]):
            # The output is already blended with the feathered mask; a layer mask of "where it
            # changed" keeps the composite exactly equal to the engine's result.
            changed = load_png_pixels(request["mask_output"], MASK_FILE, width, height)
            mask = changed.translate(MASK_COVER)

    image.undo_group_start()
    try:
        if new_layer:
            kind = (Gimp.ImageType.GRAYA_IMAGE if image.get_base_type() == Gimp.ImageBaseType.GRAY
                    else Gimp.ImageType.RGBA_IMAGE)
            layer = Gimp.Layer.new(image, layer_name(strength), width, height, kind, 100.0,
                                   Gimp.LayerMode.NORMAL)
            image.insert_layer(layer, drawable.get_parent(), image.get_item_position(drawable))
            layer.set_offsets(off_x, off_y)
            write_pixels(layer, RGBA, result, undoable=False)
            if mask is not None:
                layer_mask_channel = layer.create_mask(Gimp.AddMaskType.BLACK)
                layer.add_mask(layer_mask_channel)
                write_pixels(layer_mask_channel, MASK_IN, mask, undoable=False)
        else:
            write_pixels(drawable, RGBA, result, undoable=True)
    finally:
        image.undo_group_end()
    Gimp.progress_update(1.0)
    Gimp.displays_flush()


def run_smile(procedure, run_mode, image, drawables, config, data):
    """The procedure's run function (GIMP 3.0 ImageProcedure signature)."""
    if run_mode == Gimp.RunMode.INTERACTIVE:
        gi.require_version("GimpUi", "3.0")
        from gi.repository import GimpUi
        GimpUi.init(PROCEDURE_NAME)
        dialog = GimpUi.ProcedureDialog(procedure=procedure, config=config)
        dialog.get_widget("strength", GimpUi.SpinScale.__gtype__)  # a slider, not a spin button
        dialog.fill(["strength", "faces", "new-layer", "layer-mask"])
        accepted = dialog.run()
        dialog.destroy()
        if not accepted:
            return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
    try:
        if len(drawables) != 1 or not isinstance(drawables[0], Gimp.Layer):
            raise SmileFailure("select exactly one layer (not a mask or channel) to smile.")
        group_type = getattr(Gimp, "GroupLayer", None)
        if group_type is not None and isinstance(drawables[0], group_type) \
                and not config.get_property("new-layer"):
            raise SmileFailure("a layer group cannot be edited in place; turn on "
                               "\"Result on a new layer\" or select a single layer.")
        smile_drawable(image, drawables[0], config.get_property("strength"),
                       config.get_property("faces"), config.get_property("new-layer"),
                       config.get_property("layer-mask"))
    except SmileFailure as failure:
        # GIMP shows the returned error in its message area (and on the console in batch runs).
        message = f"Smile: {failure}"
        return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR, GLib.Error(message))
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
                                      "How much to smile (0: unchanged, negative: frown)",
                                      -2.0, 4.0, 1.0, GObject.ParamFlags.READWRITE)
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
