"""`smile install-plugin gimp|krita` into temporary folders, and the kritarc editing."""
from __future__ import annotations

import json
import os
import sys
from importlib import resources
from pathlib import Path

import pytest
from click.testing import CliRunner

import smilecore
from smile_cli.bridge.kritarc import enable_plugin_text
from smile_cli.main import cli
from smile_cli.bridge.plugin_dirs import gimp_plugins_dir, krita_pykrita_dir, kritarc_path


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def check_engine_record(folder: Path) -> dict:
    rec = json.loads((folder / "smile-engine.json").read_text(encoding="utf-8"))
    assert rec["python"] == sys.executable
    assert rec["version"] == smilecore.__version__
    cmd = rec["command"]
    assert isinstance(cmd, list) and cmd[-1] == "worker"
    assert Path(cmd[0]).is_absolute() and Path(cmd[0]).exists()
    if len(cmd) > 2:
        assert cmd == [sys.executable, "-m", "smile_cli", "worker"]
    return rec


def check_client(folder: Path) -> None:
    """The shared protocol client lies next to the plug-in, as shipped."""
    shipped = (resources.files("smile_plugins") / "common" / "smile_client.py").read_bytes()
    assert (folder / "smile_client.py").read_bytes() == shipped


def test_gimp_install(tmp_path: Path):
    plugins = tmp_path / "plug-ins"
    r = run("install-plugin", "gimp", "--dir", plugins)
    assert r.exit_code == 0, r.stderr
    folder = plugins / "smile"
    script = folder / "smile.py"
    assert script.is_file()
    assert script.read_bytes() == (resources.files("smile_plugins") / "gimp" / "smile" / "smile.py").read_bytes()
    if os.name != "nt":
        assert os.access(script, os.X_OK)
    check_engine_record(folder)
    check_client(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["smile-engine.json", "smile.py", "smile_client.py", "smile_layers.py",
                                                         "smile_merge.py"]
    assert str(folder) in r.stdout


def test_gimp_reinstall_replaces_cleanly(tmp_path: Path):
    plugins = tmp_path / "plug-ins"
    assert run("install-plugin", "gimp", "--dir", plugins).exit_code == 0
    (plugins / "smile" / "stale.py").write_text("old")
    assert run("install-plugin", "gimp", "--dir", plugins).exit_code == 0
    assert not (plugins / "smile" / "stale.py").exists()
    assert sorted(p.name for p in plugins.iterdir()) == ["smile"]  # no staging folders left


def test_krita_install_enables_in_kritarc(tmp_path: Path):
    pykrita = tmp_path / "pykrita"
    rc = tmp_path / "kritarc"
    rc.write_text("[General]\nfoo=bar\n; keep me\n\n[python]\nenable_other=true\n\n[MainWindow]\nState=AAAA\\0\n")
    r = run("install-plugin", "krita", "--dir", pykrita, "--kritarc", rc)
    assert r.exit_code == 0, r.stderr
    assert (pykrita / "smile.desktop").is_file()
    pkg = pykrita / "smile"
    assert (pkg / "__init__.py").is_file()
    src = resources.files("smile_plugins") / "krita" / "smile"
    shipped = {p.name for p in src.iterdir() if p.name != "__pycache__"}
    assert shipped <= {p.name for p in pkg.iterdir()}
    check_engine_record(pkg)
    check_client(pkg)
    assert rc.read_text() == (
        "[General]\nfoo=bar\n; keep me\n\n[python]\nenable_other=true\nenable_smile=true\n\n[MainWindow]\nState=AAAA\\0\n"
    )


def test_krita_no_enable_leaves_kritarc_alone(tmp_path: Path):
    rc = tmp_path / "kritarc"
    r = run("install-plugin", "krita", "--dir", tmp_path / "pykrita", "--kritarc", rc, "--no-enable")
    assert r.exit_code == 0, r.stderr
    assert not rc.exists()


def test_bad_editor_and_options(tmp_path: Path):
    r = run("install-plugin", "photoshop")
    assert r.exit_code == 2 and "photoshop" in r.stderr
    r = run("install-plugin", "gimp", "--dir", tmp_path, "--kritarc", tmp_path / "rc")
    assert r.exit_code == 2 and "krita only" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_unwritable_destination_is_exit_7(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("I am a file, not a folder")
    r = run("install-plugin", "gimp", "--dir", blocker / "plug-ins")
    assert r.exit_code == 7
    assert r.stderr.startswith("smile: error:") and "Traceback" not in r.stderr


# ------------------------------------------------------------------------------ kritarc edits


@pytest.mark.parametrize(
    "before, after",
    [
        ("", "[python]\nenable_smile=true\n"),
        ("[General]\na=1", "[General]\na=1\n\n[python]\nenable_smile=true\n"),
        ("[python]\nenable_smile=false\nx=1\n", "[python]\nenable_smile=true\nx=1\n"),
        ("[python]\nenable_smile=true\n", "[python]\nenable_smile=true\n"),
        ("[python]\r\nenable_a=true\r\n[b]\r\nc=d\r\n", "[python]\r\nenable_a=true\r\nenable_smile=true\r\n[b]\r\nc=d\r\n"),
        ("[pythonish]\nenable_smile=false\n", "[pythonish]\nenable_smile=false\n\n[python]\nenable_smile=true\n"),
    ],
)
def test_enable_plugin_text(before: str, after: str):
    assert enable_plugin_text(before, "smile") == after
    assert enable_plugin_text(after, "smile") == after  # idempotent


# ------------------------------------------------------------------------------ default folders


def test_default_folders_per_platform(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("APPDATA", str(tmp_path / "Roaming"))
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "Local"))
    assert gimp_plugins_dir("linux") == tmp_path / "cfg" / "GIMP" / "3.0" / "plug-ins"
    assert krita_pykrita_dir("linux") == tmp_path / "data" / "krita" / "pykrita"
    assert kritarc_path("linux") == tmp_path / "cfg" / "kritarc"
    assert gimp_plugins_dir("win32") == tmp_path / "Roaming" / "GIMP" / "3.0" / "plug-ins"
    assert krita_pykrita_dir("win32") == tmp_path / "Roaming" / "krita" / "pykrita"
    assert kritarc_path("win32") == tmp_path / "Local" / "kritarc"
    if os.name != "nt":  # expanduser("~") follows HOME on POSIX only
        mac = tmp_path / "Library"
        assert gimp_plugins_dir("darwin") == mac / "Application Support" / "GIMP" / "3.0" / "plug-ins"
        assert krita_pykrita_dir("darwin") == mac / "Application Support" / "krita" / "pykrita"
        assert kritarc_path("darwin") == mac / "Preferences" / "kritarc"
        monkeypatch.delenv("XDG_CONFIG_HOME")
        assert gimp_plugins_dir("linux") == tmp_path / ".config" / "GIMP" / "3.0" / "plug-ins"


def test_default_destination_uses_xdg(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    if not sys.platform.startswith("linux"):
        pytest.skip("XDG folders are Linux's")
    r = run("install-plugin", "gimp")
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "cfg" / "GIMP" / "3.0" / "plug-ins" / "smile" / "smile.py").is_file()


@pytest.mark.skipif(os.name == "nt", reason="a pipe closed early, and /dev/full")
def test_a_reader_closing_stdout_early_does_not_fail_the_install(tmp_path: Path):
    """`smile install-plugin gimp | true`: installed, exit 0; stdout that cannot be written: exit 7, said so."""
    import subprocess

    plugins = tmp_path / "plug-ins"
    r, w = os.pipe()
    os.close(r)  # the reader is gone before the first line
    try:
        p = subprocess.run([sys.executable, "-m", "smile_cli", "install-plugin", "gimp", "--dir", str(plugins)],
                           stdout=w, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(w)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert (plugins / "smile" / "smile.py").is_file()
    if Path("/dev/full").exists():
        with open("/dev/full", "w") as full:
            p = subprocess.run([sys.executable, "-m", "smile_cli", "install-plugin", "gimp", "--dir", str(tmp_path / "b")],
                               stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
        assert p.returncode == 7 and p.stderr.strip().endswith("; the plug-in was installed"), p.stderr
        assert (tmp_path / "b" / "smile" / "smile.py").is_file()
