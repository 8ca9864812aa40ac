"""The plug-in's state shared by the docker and the Tools → Scripts action.

One :class:`SmileController` per Krita session owns the engine process, the current strength
and face choice (remembered in Krita's settings) and runs the two flows: *preview* (debounced
by the docker, result shown as a before/after crop) and *apply* (a new paint layer).
Everything here runs on Krita's UI thread; the slow part runs in the worker process.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import jobs, pixels
from .engine import EDITOR, EngineClient, plugin_dir
from .qt import QColor, QImage, QObject, QPainter, QRect, Qt, enum, pyqtSignal
from .smile_client import DEFAULT_STRENGTH, EngineProblem, Greeting, StrengthSlider, explain, find_engine, strength_slider

SETTINGS_GROUP = "smile"
FACE_CHOICES = ("all", "largest")
PREVIEW_HEIGHT = 240


class SmileController(QObject):
    """Engine process, settings and the preview/apply flows."""

    #: (kind, message); kind: idle, engine_missing, working, ready, done, no_face, error.
    statusChanged = pyqtSignal(str, str)
    #: the before/after preview (QImage), or None when there is nothing to show.
    previewChanged = pyqtSignal(object)
    #: the new layer (a krita.Node) after a successful Apply.
    applied = pyqtSignal(object)
    #: the strength slider (a StrengthSlider: the engine's model's range) once the engine greeted.
    sliderChanged = pyqtSignal(object)

    def __init__(self, app: Any, parent: Optional[QObject] = None):
        super().__init__(parent)
        self.app = app
        self.client: Optional[EngineClient] = None
        self.engine_source = ""
        self.status = ("idle", "")
        self.strength = self._float_setting("strength", DEFAULT_STRENGTH)
        #: the model's strength range, from the engine's greeting; None until the engine started
        self.slider: Optional[StrengthSlider] = None
        faces = self._setting("faces", "all")
        self.faces = faces if faces in FACE_CHOICES else "all"
        self.engine_setting = self._setting("engine", "")
        self.engine_folder: Optional[str] = None  # where smile-engine.json is; None: this plug-in's folder
        self._preview_job: Optional[jobs.Job] = None
        # (layer key, rectangle): where the last preview found faces, so the next preview of
        # the same layer only sends that part of the image to the engine
        self._preview_region: Optional[Tuple[Any, jobs.Rect]] = None
        self._preview_again = False
        self._apply_job: Optional[jobs.Job] = None
        self.last_preview_reply: Optional[Dict[str, Any]] = None
        self.last_preview_rect: Optional[jobs.Rect] = None  # the part of the image it used
        self.last_apply_reply: Optional[Dict[str, Any]] = None
        self.last_apply_rect: Optional[jobs.Rect] = None  # the part of the image the last Apply sent

    # -- settings ----------------------------------------------------------------------
    def _setting(self, key: str, default: str) -> str:
        try:
            return str(self.app.readSetting(SETTINGS_GROUP, key, default))
        except Exception:
            return default

    def _float_setting(self, key: str, default: float) -> float:
        try:
            value = float(self._setting(key, str(default)))
        except ValueError:
            return default
        return value if math.isfinite(value) else default

    def _save(self, key: str, value: str) -> None:
        try:
            self.app.writeSetting(SETTINGS_GROUP, key, value)
        except Exception:
            pass

    def set_strength(self, value: float) -> None:
        """Set the strength, moved into the model's range once the engine has said it."""
        self.strength = self.slider.clamp(value) if self.slider is not None else float(value)
        self._save("strength", f"{self.strength:.2f}")

    def set_faces(self, value: str) -> None:
        if value not in FACE_CHOICES:
            raise ValueError(f"faces must be one of {FACE_CHOICES}")
        self.faces = value
        self._save("faces", value)
        self._preview_region = None  # other faces may be wanted now

    def set_engine_setting(self, text: str) -> None:
        """Change the engine command; the next request starts the new engine."""
        text = text.strip()
        if text == self.engine_setting:
            return
        self.engine_setting = text
        self._save("engine", text)
        self.shutdown()
        self._set_status("idle", "starting the Smile engine…")  # no stale error of the old one
        self.engine()

    # -- engine ------------------------------------------------------------------------
    def _set_status(self, kind: str, message: str) -> None:
        self.status = (kind, message)
        self.statusChanged.emit(kind, message)

    def engine(self) -> Optional[EngineClient]:
        """The running engine client, started on first use; None (and a status) if not found."""
        if self.client is not None:
            return self.client
        try:
            command, where = find_engine(self.engine_folder or plugin_dir(), EDITOR, self.engine_setting)
        except EngineProblem as problem:
            self._set_status("engine_missing", str(problem))
            return None
        self.engine_source = where
        self.client = EngineClient(command, self)
        self.client.stateChanged.connect(self._on_engine_state)
        self.client.greeted.connect(self.use_greeting)
        self.client.start()
        return self.client

    def use_greeting(self, greeting: Greeting) -> None:
        """Build the strength slider from the engine's model (its greeting) and tell the docker
        (None: the engine has no usable model, the status says why)."""
        self.slider = strength_slider(greeting, self.strength)
        if self.slider is not None:
            self.strength = self.slider.default
        self.sliderChanged.emit(self.slider)

    def probe_engine(self) -> bool:
        """Say in the status whether an engine can be found, without starting it (the worker
        loads a model: it starts only when a preview or Apply needs it).  True if found."""
        if self.client is not None:
            return True
        try:
            _, where = find_engine(self.engine_folder or plugin_dir(), EDITOR, self.engine_setting)
        except EngineProblem as problem:
            self._set_status("engine_missing", str(problem))
            return False
        if self.status[0] in ("idle", "engine_missing"):
            self._set_status("idle", f"engine found ({where}); it starts with the first preview")
        return True

    def _on_engine_state(self, kind: str, message: str) -> None:
        if kind == "error":
            self._set_status("error", message)
        elif kind == "ready" and self.status[0] in ("idle", "engine_missing"):
            self._set_status("ready", f"ready ({message})")

    def shutdown(self) -> None:
        """Stop the engine process (Krita is closing or the engine setting changed)."""
        if self.client is not None:
            self.client.stop()
            self.client.deleteLater()
            self.client = None

    def busy(self) -> bool:
        return self._apply_job is not None or self._preview_job is not None

    # -- apply -------------------------------------------------------------------------
    def apply(self, doc: Any = None, node: Any = None) -> Optional[int]:
        """Start "apply" on ``doc``/``node`` (default: the active document and layer).

        Returns the request id, or None when refused (the status then says why).
        """
        if self._apply_job is not None:
            self._set_status("working", "still working on the last Apply…")
            return None
        client = self.engine()
        if client is None:
            return None
        try:
            job = jobs.prepare(doc if doc is not None else self.app.activeDocument(),
                               self.strength, self.faces, node, apply=True)
        except Exception as exc:
            self._set_status("error", problem_text(exc))
            return None
        self._apply_job = job
        self.last_apply_rect = (job.x, job.y, job.width, job.height)
        self._set_status("working", f"working: smiling at strength {self.strength:+.1f}…")
        return self._send(client, job, self._on_apply_reply)

    def _send(self, client: EngineClient, job: jobs.Job, callback: Callable[[Dict[str, Any]], None]) -> int:
        """Send ``job``'s request; its reply goes to ``callback``.  With **Largest face** and pixels
        beyond the canvas (and no selection, which chooses the faces itself), the engine first
        lists the faces and the largest one with its middle on the canvas is asked for: a larger
        face in the band beyond the canvas, unseen, must not be the one edited.  Returns the id of
        the first request."""
        if job.faces != "largest" or job.selection_path or not jobs.reaches_beyond(job):
            return client.request(job.request(), callback)

        def choose(reply: Dict[str, Any]) -> None:
            if not reply.get("ok"):
                callback(reply)  # (its failure is the job's: said as any other)
                return
            job.faces = jobs.largest_on_canvas(reply.get("faces") or [], job) or job.faces
            client.request(job.request(), callback)

        return client.request({"cmd": "detect", "input": job.input_path}, choose)

    def _on_apply_reply(self, reply: Dict[str, Any]) -> None:
        job, self._apply_job = self._apply_job, None
        self.last_apply_reply = reply
        if job is None:
            return
        try:
            if not reply.get("ok"):
                self._report_failure(reply, job)
                return
            try:
                layer = jobs.add_result_layer(job)
            except Exception as exc:  # the document is unchanged: the layer joins it last
                self._set_status("error", problem_text(exc))
                return
            edited, why = edited_and_why(reply)
            self._set_status("done", f"added layer '{layer.name()}' ({edited} face(s) edited{why}){stacked_words(job)}")
            self.applied.emit(layer)
        finally:
            job.cleanup()

    def _report_failure(self, reply: Dict[str, Any], job: jobs.Job) -> None:
        error = reply.get("error") or {}
        place = "in the selection" if job.selection_path else "in the active layer"
        hide = {job.input_path: "the layer", job.selection_path or "": "the selection"}  # temporary names
        message = explain(error, place, EDITOR, hide)
        if error.get("code") == "no_face":
            self._set_status("no_face", message)
        else:
            self._set_status("error", f"error: {message}")

    # -- preview -----------------------------------------------------------------------
    def preview(self) -> Optional[int]:
        """Compute a preview of the active document at the current settings.

        While one preview runs, further calls only mark that another is wanted; it starts
        with the newest settings when the running one answers.
        """
        if self._preview_job is not None:
            self._preview_again = True
            return None
        client = self.engine()
        if client is None:
            return None
        doc = self.app.activeDocument()
        if doc is None:
            self.previewChanged.emit(None)
            return None
        node = doc.activeNode()
        key = layer_key(doc, node)
        region = None
        if key is not None and self._preview_region is not None and self._preview_region[0] == key:
            region = self._preview_region[1]
        try:
            job = jobs.prepare(doc, self.strength, self.faces, node, region)
        except Exception as exc:
            self._set_status("error", problem_text(exc))
            self.previewChanged.emit(None)
            return None
        self._preview_job = job
        self._preview_again = False
        if self._apply_job is None:
            self._set_status("working", f"working: preview at strength {self.strength:+.1f}…")
        return self._send(client, job, self._on_preview_reply)

    def _on_preview_reply(self, reply: Dict[str, Any]) -> None:
        job, self._preview_job = self._preview_job, None
        self.last_preview_reply = reply
        if job is None:
            return
        self.last_preview_rect = (job.x, job.y, job.width, job.height)
        try:
            if self._preview_again:
                return  # settings moved on: the newer preview replaces this one
            partial = job.partial
            if not reply.get("ok"):
                self._preview_region = None
                if partial:  # the faces moved away from the remembered area: look everywhere
                    self._preview_again = True
                    return
                self._report_failure(reply, job)
                self.previewChanged.emit(None)
                return
            boxes = jobs.edited_boxes(reply)
            region = jobs.face_region(boxes, (job.x, job.y))
            key = layer_key(job.doc, job.node)
            self._preview_region = (key, region) if key is not None and region is not None else None
            image = preview_image(job.input_path, job.output_path, boxes)
            self.previewChanged.emit(image)
            if self._apply_job is None:
                faces = len(reply.get("faces") or [])
                edited, why = edited_and_why(reply)  # (none edited: why, as Apply says it, e.g. already smiling that much)
                self._set_status("ready", f"preview at strength {job.strength:+.1f}: {faces} face(s) found"
                                 + (f", none edited{why}" if faces and not edited else ""))
        finally:
            job.cleanup()
            if self._preview_again:
                self.preview()


def edited_and_why(reply: Dict[str, Any]) -> Tuple[int, str]:
    """How many faces a reply edited, and when none, ``": <the first reason>"`` (else "")."""
    faces = reply.get("faces") or []
    edited = sum(1 for f in faces if f.get("edited"))
    reasons = sorted({f["reason"] for f in faces if f.get("reason")})
    return edited, (f": {reasons[0]}" if reasons and not edited else "")


def stacked_words(job: jobs.Job) -> str:
    """The end of the status after Apply: Ctrl+Z removes the layer, and for a source layer that
    is not plain (stacking.py) that it is hidden under the new one; a second Ctrl+Z shows it
    again where Krita's own action hid it, else it stays hidden after the undo (Krita's
    scripting does not record visibility as an undo step), to be shown with its eye (Apply
    refuses a hidden layer)."""
    if not job.stacked:
        return "; Ctrl+Z removes it" + clone_words(job)
    source, name = (f"the source '{job.node_name}'", f"'{job.node_name}'") if job.node_name else ("the source",) * 2
    undo = f", Ctrl+Z again shows {name}" if job.undoable_hide else f"; {name} stays hidden: show it again with its eye"
    return f"; {source} is hidden under it; Ctrl+Z removes it{undo}" + clone_words(job)


def clone_words(job: jobs.Job) -> str:
    """The end of the status when clone layers may copy the source: they keep showing it without
    the smile (hidden or not), and Krita's scripting cannot point them at the new layer."""
    if not job.clones:
        return ""
    names = ", ".join(f"'{name}'" for name in job.clones)
    if len(job.clones) == 1:
        start, which = f"the clone layer {names} still shows what it copies", "if it copies"
    else:
        start, which = f"the clone layers {names} still show what they copy", "where one copies"
    return (f"; {start} without the smile: {which} '{job.node_name}', right-click it in the Layers docker, "
            f"Set Copy From…, and pick '{job.result_name}'")


def problem_text(exc: Exception) -> str:
    """A one-line status for a failure: a PixelError's own words, else what went wrong."""
    if isinstance(exc, pixels.PixelError):
        return str(exc)
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"error: Smile could not use this layer ({text}); the image is unchanged"


def layer_key(doc: Any, node: Any) -> Optional[Tuple[str, str]]:
    """Something that names a document's layer across calls (Krita's wrappers are new objects
    each time); None when it cannot be had."""
    try:
        return doc.fileName(), node.uniqueId().toString()
    except Exception:
        return None


def preview_image(before_path: str, after_path: str, boxes: List[List[float]],
                  height: int = PREVIEW_HEIGHT) -> Optional[Any]:
    """Before | after crops around the edited faces, side by side, ``height`` pixels tall."""
    before, after = QImage(before_path), QImage(after_path)
    if before.isNull() or after.isNull() or not boxes:
        return None
    x0 = min(b[0] for b in boxes)
    y0 = min(b[1] for b in boxes)
    x1 = max(b[2] for b in boxes)
    y1 = max(b[3] for b in boxes)
    pad = 0.25 * max(x1 - x0, y1 - y0)
    left, top = max(0, int(x0 - pad)), max(0, int(y0 - pad))
    right, bottom = min(after.width(), int(x1 + pad)), min(after.height(), int(y1 + pad))
    if right <= left or bottom <= top:
        return None
    rect = QRect(left, top, right - left, bottom - top)
    smooth = enum(Qt, "TransformationMode.SmoothTransformation")
    crops = [img.copy(rect).scaledToHeight(height, smooth) for img in (before, after)]
    gap = 4
    canvas = QImage(crops[0].width() + gap + crops[1].width(), height,
                    enum(QImage, "Format.Format_ARGB32"))
    canvas.fill(QColor(0, 0, 0, 0))
    painter = QPainter(canvas)
    lefts = (0, crops[0].width() + gap)
    for left, crop, caption in zip(lefts, crops, ("before", "after")):
        painter.drawImage(left, 0, crop)
        band = QRect(left, height - 18, crop.width(), 18)
        painter.fillRect(band, QColor(0, 0, 0, 140))
        painter.setPen(QColor(255, 255, 255))
        painter.drawText(band, int(enum(Qt, "AlignmentFlag.AlignCenter")), caption)
    painter.end()
    return canvas
