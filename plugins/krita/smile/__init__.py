"""Smile for Krita: a docker and a Tools → Scripts action that make faces smile.

The engine runs outside Krita as a ``smile worker`` process (see engine.py); this package
needs only Krita's Python and PyQt5 or PyQt6.
"""
from __future__ import annotations


def _register() -> None:
    from krita import DockWidgetFactory, DockWidgetFactoryBase, Krita

    from .docker import DOCKER_ID, SmileDocker
    from .extension import SmileExtension

    app = Krita.instance()
    app.addDockWidgetFactory(DockWidgetFactory(DOCKER_ID, DockWidgetFactoryBase.DockRight, SmileDocker))
    app.addExtension(SmileExtension(app))


try:
    import krita  # noqa: F401  (present only inside Krita)
except ImportError:
    pass
else:
    _register()
