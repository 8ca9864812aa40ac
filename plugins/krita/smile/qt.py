"""One import point for Qt: PyQt5 (Krita 5) or PyQt6 (Krita 6).

Krita imports its own Qt binding before any plug-in runs, so whichever of the two is already
loaded is the one to use; only when neither is loaded yet (e.g. in a plain Python test) are
they tried in order PyQt5, PyQt6.  Enum members are reached through :func:`enum`, which
accepts the scoped spelling PyQt6 requires and also works on PyQt5.
"""
from __future__ import annotations

import importlib
import sys
from typing import Any


def _pick_binding() -> str:
    for name in ("PyQt6", "PyQt5"):
        if name + ".QtCore" in sys.modules:
            return name
    for name in ("PyQt5", "PyQt6"):
        try:
            importlib.import_module(name + ".QtCore")
            return name
        except ImportError:
            continue
    raise ImportError("the Smile plug-in needs PyQt5 or PyQt6 (Krita ships one of them)")


BINDING = _pick_binding()
QT6 = BINDING == "PyQt6"

QtCore = importlib.import_module(BINDING + ".QtCore")
QtGui = importlib.import_module(BINDING + ".QtGui")
QtWidgets = importlib.import_module(BINDING + ".QtWidgets")

Qt = QtCore.Qt
QObject = QtCore.QObject
QTimer = QtCore.QTimer
QProcess = QtCore.QProcess
QByteArray = QtCore.QByteArray
QProcessEnvironment = QtCore.QProcessEnvironment
QRect = QtCore.QRect
pyqtSignal = QtCore.pyqtSignal

QImage = QtGui.QImage
QPixmap = QtGui.QPixmap
QPainter = QtGui.QPainter
QColor = QtGui.QColor

QWidget = QtWidgets.QWidget
QLabel = QtWidgets.QLabel
QSlider = QtWidgets.QSlider
QDoubleSpinBox = QtWidgets.QDoubleSpinBox
QComboBox = QtWidgets.QComboBox
QPushButton = QtWidgets.QPushButton
QLineEdit = QtWidgets.QLineEdit
QVBoxLayout = QtWidgets.QVBoxLayout
QHBoxLayout = QtWidgets.QHBoxLayout
QFormLayout = QtWidgets.QFormLayout
QSizePolicy = QtWidgets.QSizePolicy


def enum(owner: Any, scoped: str) -> Any:
    """Return the enum member ``scoped`` ("Scope.Member") of ``owner`` on PyQt5 and PyQt6.

    ``enum(QImage, "Format.Format_ARGB32")`` works on both bindings; PyQt5 also knows the
    unscoped ``QImage.Format_ARGB32``, which is tried when the scoped form is missing.
    """
    scope, member = scoped.split(".")
    holder = getattr(owner, scope, None)
    if holder is not None and hasattr(holder, member):
        return getattr(holder, member)
    return getattr(owner, member)


def byte_data(image: Any) -> bytes:
    """The raw bytes of a QImage (``bits()`` differs between the bindings)."""
    ptr = image.constBits()
    ptr.setsize(image.sizeInBytes())
    return bytes(ptr)
