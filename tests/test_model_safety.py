"""Issue #9, weights safety on the CLI side: pickles are never loaded, broken or tampered model
files are refused with exit 6 and one line, a model's NaN outputs never reach a photo."""
from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from corpus_run import CORPUS, assert_one_line, invoke, stderr_lines_ok


class _Evil:
    """Unpickling this would create a marker file: proof that a pickle was executed."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.mark.parametrize("name", ["model.pkl", "model.pt", "model.onnx"])
def test_pickled_weights_are_never_loaded(name, tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / name
    evil.write_bytes(pickle.dumps(_Evil(str(marker))))
    res = invoke([str(CORPUS / "portrait.bmp"), "--out-dir", str(tmp_path / "out"), "--model", str(evil)])
    assert res.exit_code == 6, res.stderr
    assert_one_line(res.stderr)
    assert name in res.stderr
    assert not marker.exists()
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_runtime_code_never_unpickles():
    """Static guard: the engine and CLI do not use pickle-based loaders."""
    root = Path(__file__).resolve().parent.parent
    for folder in ("smilecore", "cli"):
        for src in (root / folder).rglob("*.py"):
            text = src.read_text(encoding="utf-8")
            for bad in ("import pickle", "torch.load", "allow_pickle=True", "joblib", "dill"):
                assert bad not in text, f"{src}: uses {bad}"


@pytest.mark.parametrize("what", ["missing", "garbage", "empty", "wrong-template", "wrong-contract", "size-mismatch", "no-metadata"])
def test_bad_model_files_exit_6(what, tmp_path):
    import onnx

    from fixture_model import build_fixture_model
    from smilecore import contract

    path = tmp_path / "m.onnx"
    if what == "garbage":
        path.write_bytes(b"\x08\x07not an onnx protobuf" * 50)
    elif what == "empty":
        path.write_bytes(b"")
    elif what == "wrong-template":
        build_fixture_model(path, template="some-other-template")
    elif what == "wrong-contract":
        build_fixture_model(path, contract_version="999")
    elif what in ("size-mismatch", "no-metadata"):
        build_fixture_model(path, size=64)
        m = onnx.load(str(path))
        if what == "no-metadata":
            del m.metadata_props[:]
        else:
            for prop in m.metadata_props:
                if prop.key == contract.META_SIZE:
                    prop.value = "256"  # metadata says 256, the graph takes 64
        onnx.save(m, str(path))
    res = invoke([str(CORPUS / "portrait.bmp"), "--out-dir", str(tmp_path / "out"), "--model", str(path)])
    assert res.exit_code == 6, (what, res.stderr)
    assert_one_line(res.stderr)
    assert "m.onnx" in res.stderr


@pytest.mark.parametrize("outputs, statuses", [
    ({"dx": float("nan")}, {6}),
    ({"dx": float("inf")}, {6}),
    ({"rgb": float("nan"), "mask": 1.0}, {6}),
    ({"mask": float("nan")}, {6}),
    ({"dx": 1e30, "dy": -1e30}, {0, 6}),
    ({"mask": 5.0, "rgb": 7.0}, {0, 6}),
], ids=["nan-flow", "inf-flow", "nan-rgb", "nan-mask", "huge-flow", "out-of-range"])
def test_model_with_broken_outputs_never_crashes(outputs, statuses, tmp_path):
    """A model emitting NaN/Inf is refused (exit 6); huge or out-of-range values are clipped or refused."""
    from fixture_model import build_fixture_model

    path = build_fixture_model(tmp_path / "broken.onnx", **outputs)
    out = tmp_path / "out"
    res = invoke([str(CORPUS / "portrait.bmp"), "--out-dir", str(out), "--model", str(path), "--json"])
    assert res.exit_code in statuses, res.stderr
    stderr_lines_ok(res.stderr)
    (photo,) = json.loads(res.stdout)["photos"]
    if res.exit_code == 0:
        got = np.asarray(Image.open(photo["output"]))
        src = np.asarray(Image.open(CORPUS / "portrait.bmp"))
        assert got.shape == src.shape
    else:
        assert photo["error"]["code"] == "model" and "broken.onnx" in photo["error"]["message"]
        assert not out.exists() or list(out.iterdir()) == []


@pytest.fixture
def fake_registry(tmp_path, monkeypatch, shift):
    """A registry with one downloaded model whose cached file has been tampered with."""
    from smilecore import registry

    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("SMILE_CACHE_DIR", str(cache))
    monkeypatch.delenv("SMILE_MODEL", raising=False)
    good = Path(shift).read_bytes()
    info = registry.ModelInfo(name="tampered", version="1", file="tampered.onnx", sha256=hashlib.sha256(good).hexdigest(),
                             size=len(good), license="CC0-1.0", url="http://127.0.0.1:9/tampered.onnx")
    monkeypatch.setattr(registry, "_registry", lambda: ("tampered", (info,)))
    (cache / "tampered.onnx").write_bytes(good[:-1] + bytes([good[-1] ^ 1]))  # one bit flipped
    return cache / "tampered.onnx"


def test_models_verify_refuses_a_tampered_file(fake_registry):
    res = invoke(["models", "verify", "tampered"])
    assert res.exit_code == 6
    assert_one_line(res.stderr)
    assert "tampered.onnx" in res.stderr and "checksum" in res.stderr


def test_run_refuses_a_tampered_registry_model(fake_registry, tmp_path):
    res = invoke([str(CORPUS / "portrait.bmp"), "--out-dir", str(tmp_path / "out"), "--model", "tampered"])
    assert res.exit_code == 6
    assert_one_line(res.stderr)
    assert "tampered" in res.stderr and "checksum" in res.stderr
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


# ------------------------------------------------------------------ --model paths that are not model files


@pytest.mark.parametrize("kind, words", [
    ("folder", "is a folder, not a model file"),
    ("folder-bare", "is a folder, not a model file"),
    ("device", "is not a regular file"),
    ("fifo", "is not a regular file"),
    ("broken-link", "broken symbolic link"),
    ("truncated", "not a readable ONNX model"),
    ("sparse-3GB", "not a readable ONNX model"),
    ("empty", "not a readable ONNX model"),
], ids=lambda v: v if isinstance(v, str) and " " not in v else None)
def test_model_paths_that_are_no_model_file(kind, words, tmp_path, monkeypatch, shift):
    """Before: a folder was 'does not exist' (or, without a '/', 'unknown model'), a device or pipe
    'does not exist', and a truncated file an ONNX Runtime message."""
    import os

    monkeypatch.chdir(tmp_path)
    arg = {"folder": str(tmp_path / "models"), "folder-bare": "models", "device": os.devnull}.get(kind)
    (tmp_path / "models").mkdir()
    if kind == "fifo":
        os.mkfifo(tmp_path / "pipe.onnx")
        arg = "pipe.onnx"
    elif kind == "broken-link":
        (tmp_path / "gone.onnx").symlink_to(tmp_path / "nowhere.onnx")
        arg = "gone.onnx"
    elif kind == "truncated":
        (tmp_path / "cut.onnx").write_bytes(Path(shift).read_bytes()[:300])
        arg = "cut.onnx"
    elif kind == "empty":
        (tmp_path / "empty.onnx").write_bytes(b"")
        arg = "empty.onnx"
    elif kind == "sparse-3GB":
        with open(tmp_path / "huge.onnx", "wb") as f:
            f.truncate(3 << 30)
        arg = "huge.onnx"
    res = invoke([str(CORPUS / "portrait.bmp"), "-o", str(tmp_path / "out.png"), "--model", arg, "--json"])
    assert res.exit_code == 6, res.stderr
    assert_one_line(res.stderr)
    assert words in res.stderr and Path(arg).name in res.stderr
    assert not (tmp_path / "out.png").exists()


def test_a_corrupt_model_prints_nothing_on_stdout(tmp_path, shift):
    """ONNX Runtime prints an "EP Error" banner on stdout for some broken files (here a byte of an
    input name made invalid UTF-8): it must not reach the --json report.  Before: four lines of it."""
    data = Path(shift).read_bytes()
    i = data.index(b"face")
    bad = tmp_path / "flipped.onnx"
    bad.write_bytes(data[:i] + b"\xff" + data[i + 1:])
    res = invoke([str(CORPUS / "portrait.bmp"), "-o", str(tmp_path / "out.png"), "--model", str(bad), "--json"])
    assert res.exit_code == 6, res.stderr
    assert "EP Error" not in res.stdout and "EP Error" not in res.stderr
    assert_one_line(res.stderr)
    assert "flipped.onnx" in res.stderr and "not a readable ONNX model" in res.stderr


@pytest.mark.parametrize("value", ["abc", "1.5", "-3", "99999999999999999999"])
def test_bad_smile_threads_is_a_usage_error(value, tmp_path, monkeypatch, shift):
    """Before: 'internal error: ValueError: invalid literal for int()' (exit 1), or ONNX Runtime's
    TypeError for a huge number; a negative number was silently ignored."""
    monkeypatch.setenv("SMILE_THREADS", value)
    res = invoke([str(CORPUS / "portrait.bmp"), "-o", str(tmp_path / "out.png"), "--model", str(shift)])
    assert res.exit_code == 2, res.stderr
    assert_one_line(res.stderr)
    assert "SMILE_THREADS" in res.stderr and "internal" not in res.stderr
    assert not (tmp_path / "out.png").exists()


def test_a_registry_name_wins_over_a_folder_of_that_name(tmp_path, monkeypatch):
    from smilecore import registry

    monkeypatch.chdir(tmp_path)
    name = registry.default_model_name()
    (tmp_path / name).mkdir()
    assert registry.resolve_model(name) == registry.local_path(registry.get_info(name))


def test_bad_smile_threads_is_one_line_for_smile_detect_too(tmp_path):
    """The face detector's session reads SMILE_THREADS through the same check as the smile model's."""
    import os
    import subprocess
    import sys

    sample = Path(__file__).resolve().parent.parent / "samples" / "astronaut.jpg"
    r = subprocess.run([sys.executable, "-m", "smile_cli", "detect", str(sample)], capture_output=True, text=True,
                       env={**os.environ, "SMILE_THREADS": "abc"}, cwd=tmp_path, timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == ["smile: error: SMILE_THREADS='abc' is not a number of threads: use a whole "
                                             "number from 0 (all cores) to 1024, or unset it"]


def test_a_model_asking_for_crops_over_1024_px_is_refused(tmp_path):
    """``smile.size`` is the side of every crop the engine makes, runs and resamples: a 542-byte model asking for
    8192 took 6.65 GB. Over :data:`smilecore.contract.MAX_SIZE` it is a model error (exit 6) when it is loaded."""
    from fixture_model import build_fixture_model
    from smilecore import contract
    from smilecore.errors import ModelError
    from smilecore.model import SmileModel

    assert contract.MAX_SIZE == 1024
    with pytest.raises(ModelError) as err:
        SmileModel(build_fixture_model(tmp_path / "huge.onnx", size=8192))
    assert err.value.exit_code == 6 and "huge.onnx" in str(err.value) and "8192" in str(err.value)
    assert SmileModel(build_fixture_model(tmp_path / "largest.onnx", size=1024)).size == 1024
    path = build_fixture_model(tmp_path / "over.onnx", size=1025)
    res = invoke([str(CORPUS / "portrait.bmp"), "--out-dir", str(tmp_path / "out"), "--model", str(path)])
    assert res.exit_code == 6, res.stderr
    assert_one_line(res.stderr)
    assert "over.onnx" in res.stderr and "1024" in res.stderr
