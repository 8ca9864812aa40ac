"""The one :class:`~.controller.SmileController` of this Krita session."""
from __future__ import annotations

from typing import Optional

from .controller import SmileController
from .qt import QtWidgets

_controller: Optional[SmileController] = None


def controller() -> SmileController:
    """The shared controller, created on first use; its engine stops when Krita quits."""
    global _controller
    if _controller is None:
        from krita import Krita  # only importable inside Krita

        _controller = SmileController(Krita.instance())
        qapp = QtWidgets.QApplication.instance()
        if qapp is not None:
            qapp.aboutToQuit.connect(_controller.shutdown)
    return _controller
