"""Test-only Krita plug-in: drives the Smile docker in the real GUI and exits Krita.

Enabled only in the throw-away kritarc of tests/test_krita_host.py.  Steps run one after the
other from Qt's event loop (never blocking it, so the docker's asynchronous preview and apply
really run); see driver.py.
"""
try:
    from krita import Krita
except ImportError:  # not inside Krita
    pass
else:
    from smile.qt import QTimer

    from .driver import start

    Krita.instance().notifier().windowCreated.connect(start)
    # in case the window was created before this plug-in loaded (start() runs only once)
    QTimer.singleShot(20000, lambda: start() if Krita.instance().activeWindow() is not None else None)
