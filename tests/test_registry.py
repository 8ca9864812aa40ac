"""Registry, checksums, and downloads against a loopback HTTP server."""
from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from smilecore import ModelError, registry
from smilecore.registry import ModelInfo


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files from ``directory`` and honours single ``Range: bytes=N-`` requests."""

    ranges: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = Path(self.directory) / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        rng = self.headers.get("Range")
        type(self).ranges.append(rng)
        if rng and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
            body = data[start:]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            body = data
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    _RangeHandler.ranges = []
    handler = lambda *a, **k: _RangeHandler(*a, directory=str(root), **k)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("SMILE_CACHE_DIR", str(d))
    return d


def _publish(root: Path, fixture_models, name="m.onnx") -> tuple[bytes, str]:
    data = Path(fixture_models["shift"]).read_bytes()
    (root / name).write_bytes(data)
    return data, hashlib.sha256(data).hexdigest()


def test_download_verifies_and_caches(server, cache, fixture_models):
    root, url = server
    data, sha = _publish(root, fixture_models)
    info = ModelInfo(name="t", version="1", file="m.onnx", sha256=sha, size=len(data), license="CC0", url=f"{url}/m.onnx")
    path = registry.fetch_model(info)
    assert path == cache / "m.onnx" and path.read_bytes() == data
    n = len(_RangeHandler.ranges)
    assert registry.fetch_model(info) == path and len(_RangeHandler.ranges) == n  # cached: no request


def test_download_with_wrong_checksum_is_refused(server, cache, fixture_models):
    root, url = server
    data, _ = _publish(root, fixture_models)
    info = ModelInfo(name="t", version="1", file="m.onnx", sha256="0" * 64, size=len(data), license="CC0", url=f"{url}/m.onnx")
    with pytest.raises(ModelError, match="fails its checksum"):
        registry.fetch_model(info, retries=1)
    assert not (cache / "m.onnx").exists()


def test_partial_download_resumes(server, cache, fixture_models):
    root, url = server
    data, sha = _publish(root, fixture_models)
    cache.mkdir(parents=True)
    (cache / "m.onnx.part").write_bytes(data[:100])
    info = ModelInfo(name="t", version="1", file="m.onnx", sha256=sha, size=len(data), license="CC0", url=f"{url}/m.onnx")
    path = registry.fetch_model(info)
    assert path.read_bytes() == data
    assert "bytes=100-" in _RangeHandler.ranges


def test_tampered_cached_file_is_fetched_again(server, cache, fixture_models, capsys):
    root, url = server
    data, sha = _publish(root, fixture_models)
    info = ModelInfo(name="t", version="1", file="m.onnx", sha256=sha, size=len(data), license="CC0", url=f"{url}/m.onnx")
    path = registry.fetch_model(info)
    capsys.readouterr()
    path.write_bytes(b"evil" + data[4:])
    assert registry.fetch_model(info).read_bytes() == data
    said = capsys.readouterr().err  # (said even when no terminal shows the progress)
    assert said.startswith("smile: note: model t downloaded again (the cached file ") and "fails its checksum" in said


def test_a_cached_file_this_user_may_not_read_is_not_called_corrupt_nor_deleted(server, cache, fixture_models,
                                                                                monkeypatch):
    root, url = server
    data, sha = _publish(root, fixture_models)
    info = ModelInfo(name="t", version="1", file="m.onnx", sha256=sha, size=len(data), license="CC0", url=f"{url}/m.onnx")
    path = registry.fetch_model(info)

    def denied(p, *a, **k):  # (as root every file may be read: another user's file, made up)
        raise PermissionError(13, "Permission denied", str(p))

    monkeypatch.setattr(registry, "sha256_of", denied)
    with pytest.raises(ModelError) as exc:
        registry.fetch_model(info)
    assert str(exc.value) == (f"model file {path} may not be read (permission denied): give this user read access "
                              "to it, or set SMILE_CACHE_DIR to a cache of its own")
    assert path.exists()


def test_unreachable_server(cache):
    info = ModelInfo(name="t", version="1", file="m.onnx", sha256="0" * 64, size=1, license="CC0", url="http://127.0.0.1:9/m.onnx")
    with pytest.raises(ModelError, match="cannot download model t .*cannot reach the server"):
        registry.fetch_model(info, retries=0)


def test_tampered_bundled_model_is_refused(tmp_path, monkeypatch, fixture_models):
    data = Path(fixture_models["shift"]).read_bytes()
    (tmp_path / "b.onnx").write_bytes(data)
    info = ModelInfo(name="b", version="1", file="b.onnx", sha256=hashlib.sha256(data).hexdigest(), size=len(data), license="CC0", bundled=True)
    monkeypatch.setattr(registry, "_models_dir", lambda: tmp_path)
    monkeypatch.setattr(registry, "_registry", lambda: ("b", (info,)))
    assert registry.model_path("b") == tmp_path / "b.onnx"
    assert registry.resolve_model(None) == tmp_path / "b.onnx"
    (tmp_path / "b.onnx").write_bytes(data[:-1] + b"\x00")
    with pytest.raises(ModelError, match="fails its checksum"):
        registry.resolve_model(None)
    assert registry.verify_model("b") is False


def test_smile_model_env_var(monkeypatch, fixture_models):
    monkeypatch.setenv("SMILE_MODEL", str(fixture_models["paint"]))
    assert registry.resolve_model(None) == Path(fixture_models["paint"])
    monkeypatch.setenv("SMILE_MODEL", "/nonexistent/x.onnx")
    with pytest.raises(ModelError, match="does not exist"):
        registry.resolve_model(None)


def test_unknown_name():
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        registry.get_info("nope")


@pytest.mark.parametrize("name", ["", "  "])
def test_an_empty_model_name_says_so(name):
    with pytest.raises(ModelError) as exc:
        registry.resolve_model(name)
    assert str(exc.value).startswith("the model name is empty: give a registry name"), str(exc.value)
