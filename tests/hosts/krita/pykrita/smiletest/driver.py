"""Drive the Smile docker like a person would, record what happened, exit Krita.

Environment: ``SMILE_KRITA_IMAGE`` (portrait to open), ``SMILE_KRITA_OUT`` (folder for
results.json, layer PNGs and screenshots), ``SMILE_KRITA_STRENGTH`` (default 1.5).
Exit status: 0 when every step ran (the pytest side judges the pixels), 1 on a crash,
2 on a time-out.  Pixels are only recorded here; assertions live in tests/test_krita_host.py.
"""
from __future__ import annotations

import json
import os
import time
import traceback
from typing import Any, Callable, Optional

from krita import Krita

from smile import pixels
from smile.docker import DOCKER_TITLE, SmileDocker
from smile.extension import ACTION_ID
from smile.qt import Qt, QTimer, QtWidgets, enum
from smile.session import controller

POLL_MS = 200
STEP_TIMEOUT_S = 120.0
SCREEN = (1600, 1000)


class Driver:
    """A chain of steps; each waits (polling, never blocking) for the previous one's effect."""

    def __init__(self) -> None:
        self.app = Krita.instance()
        self.out = os.environ["SMILE_KRITA_OUT"]
        self.image = os.environ["SMILE_KRITA_IMAGE"]
        self.strength = float(os.environ.get("SMILE_KRITA_STRENGTH", "1.5"))
        self.results: dict = {"steps": []}
        self.started = time.monotonic()
        self.doc: Any = None
        self.docker: Any = None
        self.window: Any = None
        self.added: list = []
        self._timer: Optional[Any] = None

    # -- plumbing ----------------------------------------------------------------------
    def log(self, step: str, **info: Any) -> None:
        self.results["steps"].append(dict(step=step, t=round(time.monotonic() - self.started, 2), **info))
        self.save()

    def save(self) -> None:
        """Write what is known so far (a hang or crash still leaves a trace)."""
        with open(os.path.join(self.out, "results.json"), "w", encoding="utf-8") as fh:
            json.dump(self.results, fh, indent=1, default=str)

    def finish(self, code: int) -> None:
        self.results["exit"] = code
        self.save()
        os._exit(code)

    def guarded(self, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except Exception:
                self.results["crash"] = traceback.format_exc()
                self.finish(1)
        return run

    def wait_until(self, what: str, condition: Callable[[], bool], then: Callable[[], None]) -> None:
        """Poll ``condition`` from the event loop; run ``then`` once it holds."""
        deadline = time.monotonic() + STEP_TIMEOUT_S

        def poll() -> None:
            try:
                if condition():
                    QTimer.singleShot(0, self.guarded(then))
                    return
            except Exception:
                self.results["crash"] = traceback.format_exc()
                self.finish(1)
            if time.monotonic() > deadline:
                self.results["timeout"] = f"waited {STEP_TIMEOUT_S:.0f} s for: {what}"
                self.results["status"] = list(controller().status)
                self.results["diagnostics"] = self.diagnostics()
                self.finish(2)
            QTimer.singleShot(POLL_MS, poll)

        QTimer.singleShot(POLL_MS, poll)

    def diagnostics(self) -> dict:
        """The plug-in's inner state, to tell why a step never finished."""
        ctl = controller()
        client = ctl.client
        info = {"status": list(ctl.status), "preview_job": ctl._preview_job is not None,
                "apply_job": ctl._apply_job is not None, "engine_source": ctl.engine_source,
                "timer_active": self.docker.timer.isActive() if self.docker is not None else None}
        if client is not None:
            info.update(command=client.command, running=client.running(), greeting=client.greeting,
                        stderr=list(client._stderr.lines)[-5:], pending=list(client._callbacks), unsent=len(client._unsent))
        return info

    def layer_names(self) -> list:
        return [n.name() for n in self.doc.topLevelNodes()]

    def screenshot(self, name: str) -> str:
        QtWidgets.QApplication.processEvents()
        path = os.path.join(self.out, name)
        ok = self.window.qwindow().grab().save(path, "PNG")
        self.log("screenshot", path=path, ok=ok)
        return path

    # -- steps -------------------------------------------------------------------------
    def open_image(self) -> None:
        self.log("started")
        self.window = self.app.activeWindow()
        self.window.qwindow().setGeometry(0, 0, *SCREEN)
        # Room for the docker in the screenshot: only Layers and Smile, a wider dock area.
        # Done before a canvas exists: resizing a fresh canvas can deadlock Krita 5.1.
        smile_dockers = [d for d in self.app.dockers() if isinstance(d, SmileDocker)]
        for other in self.app.dockers():
            if other.windowTitle() not in ("Layers", DOCKER_TITLE):
                other.setVisible(False)
        if smile_dockers:
            smile_dockers[0].setVisible(True)
            self.window.qwindow().resizeDocks(smile_dockers, [480], enum(Qt, "Orientation.Horizontal"))
        QtWidgets.QApplication.processEvents()
        self.doc = self.app.openDocument(self.image)
        if self.doc is None:
            raise RuntimeError(f"Krita could not open {self.image}")
        self.window.addView(self.doc)
        self.app.setActiveDocument(self.doc)
        dockers = [d for d in self.app.dockers() if isinstance(d, SmileDocker) or d.windowTitle() == DOCKER_TITLE]
        self.log("opened", layers=self.layer_names(), dockers=[d.objectName() for d in dockers],
                 action=self.app.action(ACTION_ID) is not None,
                 slider_enabled=dockers[0].slider.isEnabled() if dockers else None)
        if not dockers:
            raise RuntimeError("the Smile docker is not among Krita's dockers")
        self.docker = dockers[0]
        self.docker.setVisible(True)
        self.docker.raise_()
        ctl = controller()
        ctl.applied.connect(self.added.append)
        self.apply_statuses: list = []  # (the status when a layer was added: a preview may replace it)
        ctl.applied.connect(lambda layer: self.apply_statuses.append(list(controller().status)))
        ctl.last_preview_reply = None
        # a first preview (whole image), then the slider moves again: the second preview only
        # sends the area around the faces found by the first
        self.docker.set_strength(0.5)
        self.wait_until("the first preview", lambda: ctl.last_preview_reply is not None and not ctl.busy(),
                        self.second_preview)

    def second_preview(self) -> None:
        ctl = controller()
        self.log("first_preview", reply=ctl.last_preview_reply, rect=ctl.last_preview_rect)
        ctl.last_preview_reply = None
        self.docker.slider.setValue(int(round(self.strength * 10)))  # as a person drags it
        self.wait_until("the second preview", lambda: ctl.last_preview_reply is not None and not ctl.busy(),
                        self.after_preview)

    def after_preview(self) -> None:
        ctl = controller()
        pixmap = self.docker.preview.pixmap()
        has_preview = pixmap is not None and not pixmap.isNull()
        self.log("preview", reply=ctl.last_preview_reply, rect=ctl.last_preview_rect, status=list(ctl.status),
                 has_preview=has_preview,
                 preview_size=[pixmap.width(), pixmap.height()] if has_preview else None,
                 slider=self.docker.slider.value(), spin=self.docker.spin.value(),
                 slider_enabled=self.docker.slider.isEnabled(),
                 slider_range=[self.docker.slider.minimum(), self.docker.slider.maximum()],
                 spin_range=[self.docker.spin.minimum(), self.docker.spin.maximum()],
                 geometry={"docker": [self.docker.x(), self.docker.width()],
                           "label": [self.docker.preview.mapTo(self.window.qwindow(), self.docker.preview.rect().topLeft()).x(),
                                     self.docker.preview.width()],
                           "content_min": self.docker.widget().minimumSizeHint().width(),
                           "window": self.window.qwindow().width()})
        self.results["screenshot"] = self.screenshot("krita-docker.png")
        self.source = [n for n in self.doc.topLevelNodes() if n.type() == "paintlayer"][0]
        self.save_layer(self.source, "gui_source.png")
        self.docker.apply_button.click()
        self.wait_until("Apply from the docker", lambda: bool(self.added) and not ctl.busy(), self.after_apply)

    def visibility(self) -> dict:
        return {n.name(): n.visible() for n in self.doc.topLevelNodes()}

    def save_layer(self, node: Any, name: str) -> None:
        w, h = self.doc.width(), self.doc.height()
        pixels.save_bgra_png(bytes(node.pixelData(0, 0, w, h)), w, h, os.path.join(self.out, name))

    def after_apply(self) -> None:
        layer = self.added[0]
        self.doc.waitForDone()
        self.save_layer(layer, "gui_result.png")
        self.log("applied", layers=self.layer_names(), layer=layer.name(), status=list(controller().status),
                 reply=controller().last_apply_reply)
        self.screenshot("krita-applied.png")
        self.app.action("edit_undo").trigger()
        QTimer.singleShot(1500, self.guarded(self.after_undo))  # the test checks the layer is gone

    def after_undo(self) -> None:
        self.log("undone", layers=self.layer_names())
        del self.added[:]
        self.app.action(ACTION_ID).trigger()
        self.wait_until("the Tools → Scripts action", lambda: bool(self.added) and not controller().busy(),
                        self.after_action)

    def after_action(self) -> None:
        self.doc.waitForDone()
        self.save_layer(self.added[0], "gui_action_result.png")
        self.log("action", layers=self.layer_names(), status=list(controller().status))
        self.open_float()

    def open_float(self) -> None:
        """The portrait again, as a 32-bit float (linear) image at 50 % opacity (not plain: the
        Smile layer replaces it, and it is hidden): Apply, then one undo."""
        doc = self.app.openDocument(self.image)
        doc.setColorSpace("RGBA", "F32", "sRGB-elle-V2-g10.icc")
        doc.topLevelNodes()[0].setOpacity(128)
        doc.waitForDone()
        self.window.addView(doc)
        self.app.setActiveDocument(doc)
        self.doc = doc
        del self.added[:]
        self.float_layers = self.layer_names()
        self.app.action(ACTION_ID).trigger()
        self.wait_until("Apply on the float image", lambda: bool(self.added) and not controller().busy(),
                        self.after_float_apply)

    def after_float_apply(self) -> None:
        self.doc.waitForDone()
        w, h = self.doc.width(), self.doc.height()
        source = [n for n in self.doc.topLevelNodes() if n.type() == "paintlayer"][0]
        for node, name in ((source, "gui_float_source.bin"), (self.added[0], "gui_float_result.bin")):
            with open(os.path.join(self.out, name), "wb") as fh:
                fh.write(bytes(node.pixelData(0, 0, w, h)))
        self.float_size = [w, h]
        # Krita takes a closed document out of its list from the event loop: a conversion's temporary document
        # (the preview that switching to this image started) may still be listed for a moment on a busy machine;
        # one that stays open is a leak, and this step then times out
        self.wait_until("the temporary documents to close", lambda: len(self.app.documents()) <= 2,
                        self.log_float_applied)

    def log_float_applied(self) -> None:
        self.log("float_applied", layers=self.layer_names(), before=self.float_layers, status=list(controller().status),
                 visible=self.visibility(), apply_status=self.apply_statuses[-1],
                 space=[self.doc.colorModel(), self.doc.colorDepth(), self.doc.colorProfile()], size=self.float_size,
                 reply=controller().last_apply_reply, documents=len(self.app.documents()))
        self.app.action("edit_undo").trigger()
        QTimer.singleShot(1500, self.guarded(self.after_float_undo))

    def after_float_undo(self) -> None:
        self.log("float_undone", layers=self.layer_names(), visible=self.visibility())
        # Apply again on the source the undo left hidden: refused in one line, nothing sent or added
        source = [n for n in self.doc.topLevelNodes() if n.type() == "paintlayer"][0]
        request = controller().apply(self.doc, source)
        self.doc.waitForDone()
        self.log("float_retry", request=request, status=list(controller().status), layers=self.layer_names(),
                 visible=self.visibility())
        self.app.action("edit_undo").trigger()  # a second undo: Krita's own action hid the source, an undo step
        QTimer.singleShot(1500, self.guarded(self.after_float_second_undo))

    def after_float_second_undo(self) -> None:
        self.log("float_undone_twice", layers=self.layer_names(), visible=self.visibility(),
                 opacity=[n.opacity() for n in self.doc.topLevelNodes()], space=self.doc.colorDepth())
        self.app.action("edit_redo").trigger()  # redo both: the source hidden again, the Smile layer back
        QTimer.singleShot(1500, self.guarded(self.after_float_redo))

    def after_float_redo(self) -> None:
        self.log("float_redone_once", layers=self.layer_names(), visible=self.visibility())
        self.app.action("edit_redo").trigger()
        QTimer.singleShot(1500, self.guarded(self.after_float_second_redo))

    def after_float_second_redo(self) -> None:
        self.doc.waitForDone()
        w, h = self.doc.width(), self.doc.height()
        layer = [n for n in self.doc.topLevelNodes() if n.name() != self.float_layers[0]][-1:]
        if layer:
            with open(os.path.join(self.out, "gui_float_redone.bin"), "wb") as fh:
                fh.write(bytes(layer[0].pixelData(0, 0, w, h)))
        self.log("float_redone", layers=self.layer_names(), visible=self.visibility())
        controller().shutdown()
        self.finish(0)


_driver: Optional[Driver] = None


def start() -> None:
    """Called once Krita's main window exists: start the steps shortly after."""
    global _driver
    if _driver is not None:
        return
    _driver = Driver()
    QTimer.singleShot(1000, _driver.guarded(_driver.open_image))
