"""The "Smile: apply" action in Tools → Scripts, for keyboard users."""
from __future__ import annotations

from typing import Any

from krita import Extension, Krita

from .qt import QtGui
from .session import controller

ACTION_ID = "smile_apply"
ACTION_TEXT = "Smile: apply"


class SmileExtension(Extension):
    """Registers the action; it applies Smile with the docker's current settings."""

    def __init__(self, parent: Any):
        super().__init__(parent)
        self._reporting = False

    def setup(self) -> None:
        pass

    def createActions(self, window: Any) -> None:
        action = window.createAction(ACTION_ID, ACTION_TEXT, "tools/scripts")
        action.setToolTip("Make the faces in the active layer smile (settings from the Smile docker)")
        action.triggered.connect(lambda *_: self.apply())

    def apply(self) -> None:
        ctl = controller()
        if not self._reporting:
            ctl.statusChanged.connect(self._show_message)
            self._reporting = True
        ctl.apply()

    def _show_message(self, kind: str, message: str) -> None:
        """Show results of the action on the canvas too: the docker may be hidden."""
        if kind not in ("done", "no_face", "error", "engine_missing"):
            return
        window = Krita.instance().activeWindow()
        view = window.activeView() if window is not None else None
        if view is not None:
            view.showFloatingMessage(f"Smile: {message}", QtGui.QIcon(), 6000, 1)
