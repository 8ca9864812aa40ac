"""The Smile docker: strength, faces, a live before/after preview, Apply, and a status line.

The strength slider spans the range of the engine's model, which the engine says when it starts
(its greeting); until then the slider waits, disabled.
"""
from __future__ import annotations

from typing import Any, Optional

from krita import DockWidget

from .controller import FACE_CHOICES
from .engine import FIX_HINT
from .qt import (QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                 QPixmap, QPushButton, QSizePolicy, QSlider, QTimer, Qt, QVBoxLayout, QWidget, enum)
from .session import controller
from .smile_client import StrengthSlider

DOCKER_ID = "smile_docker"
DOCKER_TITLE = "Smile"
SLIDER_STEPS = 10  # slider units per strength unit
DEBOUNCE_MS = 350
STATUS_COLOURS = {"error": "#c0392b", "engine_missing": "#c0392b", "no_face": "#b9770e",
                  "working": "#2e86c1", "done": "#1e8449", "ready": "#1e8449"}
FACE_LABELS = {"all": "All faces", "largest": "Largest face"}


class PreviewLabel(QLabel):
    """Shows the before/after preview scaled to the space it has (never widening the docker)."""

    def __init__(self, text: str):
        super().__init__(text)
        self.image: Optional[Any] = None
        ignored = enum(QSizePolicy, "Policy.Ignored")
        self.setSizePolicy(ignored, ignored)
        self.setMinimumSize(120, 120)
        self.setAlignment(enum(Qt, "AlignmentFlag.AlignCenter"))

    def show_image(self, image: Optional[Any], empty_text: str = "Preview: no face to show") -> None:
        self.image = image
        if image is None:
            self.setPixmap(QPixmap())
            self.setText(empty_text)
        else:
            self._rescale()

    def _rescale(self) -> None:
        if self.image is None:
            return
        pixmap = QPixmap.fromImage(self.image)
        w, h = max(1, self.width()), max(1, self.height())
        if pixmap.width() > w or pixmap.height() > h:
            pixmap = pixmap.scaled(w, h, enum(Qt, "AspectRatioMode.KeepAspectRatio"),
                                   enum(Qt, "TransformationMode.SmoothTransformation"))
        self.setPixmap(pixmap)

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        self._rescale()


class SmileDocker(DockWidget):
    """Controls for the shared controller; previews are debounced while the slider moves."""

    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle(DOCKER_TITLE)
        self.ctl = controller()
        root = QWidget(self)
        layout = QVBoxLayout(root)
        layout.setContentsMargins(6, 4, 6, 4)

        form = QFormLayout()
        strength_row = QHBoxLayout()
        self.slider = QSlider(enum(Qt, "Orientation.Horizontal"))
        self.slider.setObjectName("smile_strength_slider")
        self.spin = QDoubleSpinBox()
        self.spin.setObjectName("smile_strength_spin")
        self.spin.setSingleStep(1.0 / SLIDER_STEPS)
        self.spin.setDecimals(1)
        strength_row.addWidget(self.slider, 1)
        strength_row.addWidget(self.spin)
        form.addRow("Strength", strength_row)

        self.faces = QComboBox()
        self.faces.setObjectName("smile_faces")
        for choice in FACE_CHOICES:
            self.faces.addItem(FACE_LABELS[choice], choice)
        form.addRow("Faces", self.faces)
        layout.addLayout(form)

        self.preview = PreviewLabel("Preview: open a portrait")
        self.preview.setObjectName("smile_preview")
        self.preview.setToolTip("before | after, around the edited faces")
        layout.addWidget(self.preview, 1)

        self.apply_button = QPushButton("Apply (new layer)")
        self.apply_button.setObjectName("smile_apply_button")
        layout.addWidget(self.apply_button)

        self.status = QLabel("")
        self.status.setObjectName("smile_status")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(enum(Qt, "TextInteractionFlag.TextSelectableByMouse"))
        layout.addWidget(self.status)

        engine_row = QHBoxLayout()
        self.engine_edit = QLineEdit(self.ctl.engine_setting)
        self.engine_edit.setObjectName("smile_engine")
        self.engine_edit.setPlaceholderText("engine: found automatically (or path to 'smile')")
        self.engine_edit.setToolTip("Path of the 'smile' program (or a full worker command line). "
                                    f"Leave empty to use the one `{FIX_HINT}` set up.")
        engine_row.addWidget(QLabel("Engine"))
        engine_row.addWidget(self.engine_edit, 1)
        layout.addLayout(engine_row)
        self.setWidget(root)

        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(DEBOUNCE_MS)

        self._use_slider(self.ctl.slider)
        self.faces.setCurrentIndex(max(0, FACE_CHOICES.index(self.ctl.faces)))

        self.slider.valueChanged.connect(self._slider_moved)
        self.spin.valueChanged.connect(self._spin_changed)
        self.faces.currentIndexChanged.connect(self._faces_changed)
        self.apply_button.clicked.connect(lambda *_: self.ctl.apply())
        self.engine_edit.editingFinished.connect(self._engine_changed)
        self.timer.timeout.connect(lambda *_: self.ctl.preview())
        self.ctl.statusChanged.connect(self._show_status)
        self.ctl.previewChanged.connect(self._show_preview)
        self.ctl.sliderChanged.connect(self._use_slider)
        self._show_status(*self.ctl.status)
        self.ctl.probe_engine()

    # -- widgets -> controller -----------------------------------------------------------
    def _use_slider(self, slider: Optional[StrengthSlider]) -> None:
        """Span the model's range (None: not known yet, the engine has not started)."""
        known = slider is not None
        for widget in (self.slider, self.spin):
            widget.setEnabled(known)
            widget.setToolTip("" if known else "the range is the engine's model's: "
                                               "it is known once the engine starts (first preview)")
        if known:
            for widget in (self.slider, self.spin):
                widget.blockSignals(True)
            self.slider.setRange(int(round(slider.low * SLIDER_STEPS)), int(round(slider.high * SLIDER_STEPS)))
            self.spin.setRange(slider.low, slider.high)
            for widget in (self.slider, self.spin):
                widget.blockSignals(False)
        self._set_strength_widgets(self.ctl.strength)

    def _set_strength_widgets(self, value: float) -> None:
        for widget, v in ((self.slider, int(round(value * SLIDER_STEPS))), (self.spin, value)):
            widget.blockSignals(True)
            widget.setValue(v)
            widget.blockSignals(False)

    def _slider_moved(self, position: int) -> None:
        self.set_strength(position / SLIDER_STEPS)

    def _spin_changed(self, value: float) -> None:
        self.set_strength(value)

    def set_strength(self, value: float) -> None:
        """Set the strength (also used by tests) and schedule a preview."""
        self.ctl.set_strength(value)
        self._set_strength_widgets(self.ctl.strength)
        self.schedule_preview()

    def _faces_changed(self, index: int) -> None:
        self.ctl.set_faces(self.faces.itemData(index))
        self.schedule_preview()

    def _engine_changed(self) -> None:
        self.ctl.set_engine_setting(self.engine_edit.text())
        self.schedule_preview()

    def schedule_preview(self) -> None:
        """(Re)start the debounce timer: the preview runs once the controls rest."""
        self.timer.start()

    # -- controller -> widgets -----------------------------------------------------------
    def _show_status(self, kind: str, message: str) -> None:
        colour = STATUS_COLOURS.get(kind)
        self.status.setStyleSheet(f"color: {colour};" if colour else "")
        self.status.setText(message)

    def _show_preview(self, image: Optional[Any]) -> None:
        self.preview.show_image(image)

    # -- Krita -------------------------------------------------------------------------
    def canvasChanged(self, canvas: Any) -> None:
        """A different document became active: refresh the preview for it."""
        if canvas is not None and self.isVisible():
            self.schedule_preview()
