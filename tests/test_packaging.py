"""What ``pip install`` and the sdist hold: the wheel installs the engine, the command and the plug-ins
with the bundled models, never a top-level ``training`` package (it runs from the checkout); the sdist is
the whole project (``git ls-files``, less ``.gitignore``), so its tests and the README's commands run;
the metadata names the licences; a missing extra's hint works without a checkout.

The sdist is built from a copy of the tracked files (in an extracted sdist: of those its SOURCES.txt lists,
so there it checks that a rebuilt sdist keeps them all), and the wheel from that sdist (as ``python -m build``
does: a stale ``build/`` of the checkout cannot leak into it), in-process through ``setuptools.build_meta``:
offline, no build isolation. Needs setuptools >= 77 (the ``[test]`` extra has it); without it they skip.
"""
from __future__ import annotations

import email
import importlib.metadata
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
#: What every sdist holds beside the project's files (written by the build).
GENERATED = ("PKG-INFO", "setup.cfg")


def _setuptools_problem() -> str | None:
    try:
        version = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return "setuptools is not installed"
    if int(version.split(".")[0]) < 77:
        return f"setuptools {version} is too old to build this project (77 or later: pip install \".[test]\")"
    return None


def _tracked() -> list[str]:
    """The repository's files (``git ls-files``); in an extracted sdist, the files its SOURCES.txt lists."""
    done = None
    if shutil.which("git") is not None:
        done = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, timeout=60)
    if done is not None and done.returncode == 0:
        names = done.stdout.decode().split("\0")
    elif (REPO / "PKG-INFO").is_file() and list(REPO.glob("*.egg-info/SOURCES.txt")):
        names = [n for n in list(REPO.glob("*.egg-info/SOURCES.txt"))[0].read_text().splitlines()
                 if n not in GENERATED and ".egg-info/" not in n]
    else:
        pytest.skip("neither a git checkout nor an extracted sdist: nothing says which files are the project's")
    return [name for name in names if name and (REPO / name).is_file()]


def _build(kind: str, source: Path, out: Path) -> Path:
    """``setuptools.build_meta.build_sdist`` / ``build_wheel`` of ``source`` into ``out``, in a fresh process."""
    code = f"import sys; from setuptools import build_meta; print(build_meta.build_{kind}(sys.argv[1]))"
    done = subprocess.run([sys.executable, "-c", code, str(out)], cwd=source, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"build_{kind} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return out / done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    """The sdist (from a copy of the tracked files) and the wheel (from the sdist), built once."""
    problem = _setuptools_problem()
    if problem:
        pytest.skip(problem)
    tracked = _tracked()
    base = tmp_path_factory.mktemp("packaging")
    copy = base / "checkout"
    for name in tracked:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, copy / name)
    (base / "dist").mkdir()
    sdist = _build("sdist", copy, base / "dist")
    with tarfile.open(sdist) as tar:
        tar.extractall(base / "unpacked", **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        members = [m.name for m in tar.getmembers() if m.isfile()]
    (root,) = (base / "unpacked").iterdir()
    wheel = _build("wheel", root, base / "dist")
    return {"tracked": tracked, "sdist": sdist, "sdist_files": [m.split("/", 1)[1] for m in members], "wheel": wheel}


def _wheel_names(built: dict) -> list[str]:
    with zipfile.ZipFile(built["wheel"]) as whl:
        return whl.namelist()


def _metadata(built: dict) -> email.message.Message:
    with zipfile.ZipFile(built["wheel"]) as whl:
        (name,) = [n for n in whl.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(whl.read(name))


def test_the_wheel_installs_no_training_package(built):
    names = _wheel_names(built)
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"smilecore", "smile_cli", "smile_plugins"}, sorted(tops)
    (top_level,) = [n for n in names if n.endswith(".dist-info/top_level.txt")]
    with zipfile.ZipFile(built["wheel"]) as whl:
        assert whl.read(top_level).decode().split() == ["smile_cli", "smile_plugins", "smilecore"]


def test_the_wheel_has_the_models_and_the_plug_ins(built):
    names = set(_wheel_names(built))
    models = [n for n in built["tracked"] if n.startswith("smilecore/models/")]
    assert {"smilecore/models/registry.json", "smilecore/models/MODEL_CARD.md"} <= set(models)
    assert sum(n.endswith(".onnx") for n in models) >= 3
    missing = [n for n in models if n not in names]
    plugins = [n for n in built["tracked"] if n.startswith("plugins/") and not n.endswith(".md")]
    missing += [n for n in plugins if "smile_plugins/" + n.removeprefix("plugins/") not in names]
    assert not missing, f"not in the wheel: {missing}"
    # (byte for byte)
    with zipfile.ZipFile(built["wheel"]) as whl:
        for name in models:
            assert whl.read(name) == (REPO / name).read_bytes(), name


def test_the_sdist_is_the_whole_project(built):
    files = {n for n in built["sdist_files"] if n not in GENERATED and ".egg-info/" not in n}
    expected = set(built["tracked"]) - {".gitignore"}
    assert not expected - files, f"tracked but not in the sdist: {sorted(expected - files)}"
    assert not files - expected, f"in the sdist but not tracked: {sorted(files - expected)}"


def test_the_metadata_names_both_licences_and_their_files(built):
    meta = _metadata(built)
    assert meta["License-Expression"] == "Apache-2.0 AND LicenseRef-Smile-Weights-Research-NonCommercial"
    assert meta["License"] is None  # (the old free-text field)
    assert set(meta.get_all("License-File")) >= {"LICENSE", "smilecore/models/NOTICE",
                                                 "smilecore/models/BLAZEFACE-LICENSE.txt",
                                                 "smilecore/models/MODEL_CARD.md"}
    names = _wheel_names(built)
    for licence in meta.get_all("License-File"):
        assert any(n.endswith(".dist-info/licenses/" + licence) for n in names), licence
    classifiers = meta.get_all("Classifier") or []
    assert classifiers and not [c for c in classifiers if c.startswith("License ::")]
    assert meta["Keywords"] and "videos" in meta["Summary"]


def _extra(name: str) -> Requirement:
    """The one requirement of the extra ``name``, as the installed metadata says (pyproject.toml's)."""
    found = [Requirement(r) for r in importlib.metadata.requires("smile-filter") or []]
    found = [r for r in found if r.marker is not None and r.marker.evaluate({"extra": name})
             and not r.marker.evaluate({"extra": ""})]
    assert len(found) == 1, (name, found)
    (requirement,) = found
    requirement.marker = None
    return requirement


def test_a_missing_extras_hint_needs_no_checkout(monkeypatch):
    """PyAV, pillow-heif and Ray: the hint is the extra's own requirement, installable anywhere."""
    from smile_cli import ray_connect
    from smilecore import heif, video_streams
    from smilecore.errors import SmileError

    monkeypatch.setitem(sys.modules, "av", None)  # (as if not installed)
    monkeypatch.setitem(sys.modules, "ray", None)
    hints = {}
    for extra, call in (("video", video_streams.require_av), ("ray", ray_connect.import_ray)):
        with pytest.raises(SmileError) as caught:
            call()
        hints[extra] = str(caught.value)
    hints["heif"] = heif.INSTALL  # (what a HEIF photo's message ends with: tests/test_heif.py)
    for extra, hint in hints.items():
        said = re.search(r'pip install "([^"]+)" \(the \[(\w+)\] extra\)', hint)
        assert said and said[2] == extra, hint
        assert Requirement(said[1]) == _extra(extra), hint
        assert '".[' not in hint and "checkout" not in hint, hint
