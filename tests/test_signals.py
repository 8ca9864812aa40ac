"""A stop (Ctrl-C, SIGTERM) that arrives while a temporary file or folder is being made leaves nothing behind.

Before: the stop was raised inside ``mkstemp`` / ``mkdtemp``, after the file or folder existed but before its name
was kept, so nothing removed it (``tests/test_video.py::test_sigterm_leaves_no_partial_file`` failed now and then
on a loaded machine: exit 143, a ``.out.mp4.XXXXXXXX.smile-tmp`` left)."""
from __future__ import annotations

import signal
import tempfile
from pathlib import Path

import pytest

from smilecore import atomic
from smilecore.signals import deferred_signals


@pytest.fixture
def ctrl_c_raises():
    """SIGINT raises KeyboardInterrupt in the main thread, as in a run of ``smile``."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def stopped_just_after(make):
    """``make`` (mkstemp or mkdtemp), with a Ctrl-C that arrives once it has made its file or folder."""
    def racing(*args, **kwargs):
        made = make(*args, **kwargs)
        signal.raise_signal(signal.SIGINT)
        return made
    return racing


def test_a_stop_while_the_temporary_file_is_made_leaves_no_file(tmp_path: Path, monkeypatch, ctrl_c_raises):
    target = tmp_path / "out.png"
    target.write_bytes(b"the user's file")
    monkeypatch.setattr(tempfile, "mkstemp", stopped_just_after(tempfile.mkstemp))
    with pytest.raises(KeyboardInterrupt):
        atomic.write_atomic(target, lambda f: f.write(b"new"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]
    assert target.read_bytes() == b"the user's file"


def test_a_stop_while_the_work_folder_is_made_leaves_no_folder(tmp_path: Path, monkeypatch, ctrl_c_raises):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(atomic, "_work_swept", True)
    monkeypatch.setattr(tempfile, "mkdtemp", stopped_just_after(tempfile.mkdtemp))
    with pytest.raises(KeyboardInterrupt):
        with atomic.work_folder(atomic.WORK_PREFIXES[0]):
            pytest.fail("the stop comes before the folder is used")
    assert list(tmp_path.iterdir()) == []


def test_a_deferral_inside_another_hands_its_signal_to_the_outer_one(ctrl_c_raises):
    seen = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_signals():
            with deferred_signals():
                signal.raise_signal(signal.SIGINT)
                seen.append("inner")
            seen.append("outer")  # (the inner one's exit handed the signal on, not raised it)
    assert seen == ["inner", "outer"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
