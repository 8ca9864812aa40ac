"""The model cache against a hostile network and a hostile disk (docs/cli.md, `smile models`).

A loopback HTTP server plays every kind of server (one that drops the connection half-way, sends a
web page, a 404, the wrong bytes, a bigger file, cannot resume); the cache is made unwritable, full
or a file.  Whatever happens, a file under the model's name is the registered bytes or absent,
every failure is one line with exit 6 (or 2), and an interrupted download resumes.
"""
from __future__ import annotations

import hashlib
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from smile_cli.main import cli
from smilecore import ModelError, registry
from smilecore.registry import ModelInfo

DATA = bytes(range(256)) * 400  # 102,400 bytes: a "model" (only its checksum matters here)
SHA = hashlib.sha256(DATA).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    """``GET /MODE/NAME``: the file ``NAME`` from ``files``, served the way MODE says."""

    protocol_version = "HTTP/1.1"
    files: dict[str, bytes] = {}
    log: list[tuple[str, str | None]] = []
    delay = 0.0  # seconds between 4 kB pieces ("slow")

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: C901 - one branch per kind of server
        mode, _, name = self.path.strip("/").partition("/")
        type(self).log.append((self.path, self.headers.get("Range")))
        data = type(self).files.get(name)
        if mode == "404" or data is None:
            self.send_error(404)
            return
        if mode == "loop":  # a redirect to itself
            self.send_response(302)
            self.send_header("Location", self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if mode == "html":
            body = b"<!doctype html><html><body>Please sign in</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if mode == "wrong":
            data = data[:-1] + bytes([data[-1] ^ 1])
        if mode == "bigger":
            data = data + b"x" * 1000
        start = 0
        rng = self.headers.get("Range")
        if rng and mode != "norange":
            start = int(rng[6:].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "half":  # the connection drops after half of what was promised
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if mode == "slow":
            for i in range(0, len(body), 4096):
                self.wfile.write(body[i:i + 4096])
                self.wfile.flush()
                time.sleep(type(self).delay)
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    _Handler.files = {"m.onnx": DATA}
    _Handler.log = []
    _Handler.delay = 0.0
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv("SMILE_CACHE_DIR", str(d))
    monkeypatch.delenv("SMILE_MODEL", raising=False)
    monkeypatch.setattr(registry, "RETRY_PAUSE", 0.0, raising=False)
    return d


def info_for(url: str, mode: str = "ok", **kw) -> ModelInfo:
    fields = dict(name="dl", version="1.0", file="dl-1.0.onnx", sha256=SHA, size=len(DATA), license="CC0",
                  url=f"{url}/{mode}/m.onnx")
    fields.update(kw)
    return ModelInfo(**fields)


_REAL_REGISTRY = registry._registry


def use_registry(monkeypatch, *infos: ModelInfo) -> None:
    """The real registry plus ``infos`` (replacing what an earlier call added)."""
    base = _REAL_REGISTRY()
    monkeypatch.setattr(registry, "_registry", lambda: (base[0], base[1] + tuple(infos)))


def leftovers(folder: Path) -> list[str]:
    """Files in the cache other than the lock files."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) if folder.exists() else []


def one_line(text: str) -> str:
    assert text.strip() and "\n" not in text.strip() and "Traceback" not in text, f"not one line: {text!r}"
    return text.strip()


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


# ----------------------------------------------------------------------------- a hostile server


def test_a_dropped_connection_keeps_the_bytes_and_the_next_run_resumes(server, cache):
    """Before: the half file was taken for a wrong download ("fails its checksum"), deleted, and
    every retry started again from byte 0."""
    with pytest.raises(ModelError) as exc:
        registry.fetch_model(info_for(server, "half"), retries=0)
    msg = str(exc.value)
    assert f"closed after {len(DATA) // 2} of {len(DATA)} bytes" in msg and "again to resume" in msg
    assert leftovers(cache) == ["dl-1.0.onnx.part"]  # never under the model's name
    assert (cache / "dl-1.0.onnx.part").read_bytes() == DATA[: len(DATA) // 2]
    path = registry.fetch_model(info_for(server, "ok"))
    assert path == cache / "dl-1.0.onnx" and path.read_bytes() == DATA
    assert _Handler.log[-1][1] == f"bytes={len(DATA) // 2}-"  # resumed, not started over
    assert leftovers(cache) == ["dl-1.0.onnx"]


def test_retries_resume_a_connection_that_keeps_dropping(server, cache):
    with pytest.raises(ModelError, match="again to resume"):
        registry.fetch_model(info_for(server, "half"), retries=2)
    ranges = [r for _, r in _Handler.log]
    assert ranges == [None, f"bytes={len(DATA) // 2}-", f"bytes={len(DATA) // 2 + len(DATA) // 4}-"]


def test_a_complete_part_file_is_finished_not_refused(server, cache):
    """Before: a .part holding the whole file (interrupted just before its rename) was resumed with
    'Range: bytes=SIZE-', the server answered 416, and every later run failed the same way."""
    cache.mkdir()
    (cache / "dl-1.0.onnx.part").write_bytes(DATA)
    assert registry.fetch_model(info_for(server)).read_bytes() == DATA
    assert _Handler.log == []  # nothing left to download
    assert leftovers(cache) == ["dl-1.0.onnx"]


def test_a_part_file_longer_than_the_model_is_started_again(server, cache):
    cache.mkdir()
    (cache / "dl-1.0.onnx.part").write_bytes(DATA + b"stale tail of another file")
    assert registry.fetch_model(info_for(server)).read_bytes() == DATA
    assert _Handler.log[0][1] is None


def test_a_server_that_cannot_resume_sends_everything_again(server, cache):
    cache.mkdir()
    (cache / "dl-1.0.onnx.part").write_bytes(b"garbage" * 10)
    assert registry.fetch_model(info_for(server, "norange")).read_bytes() == DATA
    assert leftovers(cache) == ["dl-1.0.onnx"]


def test_a_web_page_instead_of_the_model(server, cache):
    """Before: the page was downloaded three times and reported as a checksum failure."""
    with pytest.raises(ModelError) as exc:
        registry.fetch_model(info_for(server, "html"))
    assert "web page" in str(exc.value) and "text/html" in str(exc.value)
    assert len(_Handler.log) == 1  # no point asking again
    assert leftovers(cache) == []


def test_a_404_is_said_once(server, cache):
    with pytest.raises(ModelError, match=r"HTTP 404"):
        registry.fetch_model(info_for(server, "404"))
    assert len(_Handler.log) == 1
    assert leftovers(cache) == []


def test_a_redirect_loop_is_one_line_said_once(server, cache):
    """Before: urllib's three-line text about an infinite loop, inside the one-line message."""
    with pytest.raises(ModelError) as exc:
        registry.fetch_model(info_for(server, "loop"))
    assert "redirects (HTTP 302) lead nowhere or in a loop: check the download address" in one_line(str(exc.value))
    assert 1 < len(_Handler.log) <= 11  # (urllib's own limit on one request's redirects; no second try)
    assert leftovers(cache) == []


def test_wrong_bytes_are_never_kept(server, cache):
    with pytest.raises(ModelError) as exc:
        registry.fetch_model(info_for(server, "wrong"), retries=1)
    assert "fails its checksum" in str(exc.value) and "not this model" in str(exc.value)
    assert len(_Handler.log) == 2 and all(r is None for _, r in _Handler.log)  # each try from scratch
    assert leftovers(cache) == []


def test_a_file_of_another_size_is_refused_before_it_is_downloaded(server, cache):
    with pytest.raises(ModelError, match=f"offers {len(DATA) + 1000} bytes.*has {len(DATA)}"):
        registry.fetch_model(info_for(server, "bigger"))
    assert leftovers(cache) == []


def test_a_damaged_cached_file_is_replaced_and_never_left_looking_valid(server, cache, monkeypatch):
    info = info_for(server)
    use_registry(monkeypatch, info)
    path = registry.fetch_model(info)
    path.write_bytes(DATA[:-1] + bytes([DATA[-1] ^ 0x40]))  # one flipped bit
    rows = {r["name"]: r for r in json.loads(run("models", "list", "--json").stdout)}
    assert rows["dl"]["state"] == "corrupt" and rows["dl"]["installed"] is False
    assert "checksum" in rows["dl"]["problem"]
    res = run("models", "pull", "dl")
    assert res.exit_code == 0, res.stderr
    assert path.read_bytes() == DATA
    # offline, a truncated copy: one line, exit 6, and the damaged file is gone
    path.write_bytes(DATA[:1000])
    use_registry(monkeypatch, info_for("http://127.0.0.1:9"))
    res = run("models", "pull", "dl")
    assert res.exit_code == 6
    line = one_line(res.stderr)
    assert str(path) in line and "checksum" in line and "cannot reach the server" in line
    assert not path.exists()


# ----------------------------------------------------------------------------- two processes, signals


def test_two_downloads_of_one_model_take_turns(server, cache):
    """Before: both appended to one .part file (interleaved bytes) and each could move the other's file."""
    _Handler.delay = 0.01
    info = info_for(server, "slow")
    results, errors = [], []

    def fetch():
        try:
            results.append(registry.fetch_model(info))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    first = threading.Thread(target=fetch)
    first.start()
    deadline = time.monotonic() + 30
    while not (cache.is_dir() and any(p.suffix == ".part" for p in cache.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.01)  # the first one is downloading
    second = threading.Thread(target=fetch)
    second.start()
    first.join(60)
    second.join(60)
    assert errors == [] and results == [cache / "dl-1.0.onnx"] * 2
    assert (cache / "dl-1.0.onnx").read_bytes() == DATA
    assert len(_Handler.log) == 1  # the second found the first one's file
    assert leftovers(cache) == ["dl-1.0.onnx"]


_PULL = """
import sys
from smilecore import registry
from smilecore.registry import ModelInfo
info = ModelInfo(**{info!r})
base = registry._registry()
registry._registry = lambda: (base[0], base[1] + (info,))
from smile_cli.main import main
main(["models", "pull", "dl"])
"""


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_an_interrupted_pull_keeps_its_part_and_resumes(server, cache, sig, status):
    _Handler.delay = 0.02
    info = info_for(server, "slow")
    code = _PULL.format(info=info.__dict__)
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, env=dict(os.environ),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    part = cache / "dl-1.0.onnx.part"
    deadline = time.monotonic() + 60
    while not (part.exists() and part.stat().st_size > 0) and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    assert "Traceback" not in err.decode()
    kept = part.stat().st_size
    assert 0 < kept < len(DATA) and leftovers(cache) == ["dl-1.0.onnx.part"]
    assert registry.fetch_model(info_for(server)).read_bytes() == DATA
    assert _Handler.log[-1][1] == f"bytes={kept}-"


# ----------------------------------------------------------------------------- a hostile disk


def test_a_file_where_the_cache_folder_should_be(server, tmp_path, monkeypatch):
    blocker = tmp_path / "cache"
    blocker.write_text("I am a file")
    monkeypatch.setenv("SMILE_CACHE_DIR", str(blocker))
    use_registry(monkeypatch, info_for(server))
    res = run("models", "pull", "dl")
    assert res.exit_code == 6
    line = one_line(res.stderr)
    assert str(blocker) in line and "not a folder" in line and "SMILE_CACHE_DIR" in line
    assert blocker.read_text() == "I am a file" and _Handler.log == []
    monkeypatch.setenv("SMILE_CACHE_DIR", str(blocker / "models"))
    res = run("models", "pull", "dl")
    assert res.exit_code == 6 and "SMILE_CACHE_DIR" in one_line(res.stderr)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_cache(server, cache, monkeypatch):
    cache.mkdir()
    cache.chmod(0o555)
    try:
        use_registry(monkeypatch, info_for(server))
        res = run("models", "pull", "dl")
        assert res.exit_code == 6
        line = one_line(res.stderr)
        assert str(cache) in line and "SMILE_CACHE_DIR" in line
    finally:
        cache.chmod(0o755)


def test_a_full_disk_leaves_no_partial_file(server, cache):
    """A file size limit stands in for a full disk (the same write error).  Before: the error was
    'download failed: [Errno 27] File too large', retried, and the half file stayed."""
    import resource

    info = info_for(server)
    code = _PULL.format(info=info.__dict__)

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))

    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, preexec_fn=limit,
                         env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"), timeout=120)
    assert res.returncode == 6, res.stderr
    line = one_line(res.stderr)
    assert f"cannot write into the model cache {cache}" in line and "free some space" in line
    assert leftovers(cache) == [] and len(_Handler.log) == 1


def test_a_cache_path_with_spaces_and_unicode(server, tmp_path, monkeypatch, fixture_models):
    folder = tmp_path / "my models" / "ünïcødé 😀"
    monkeypatch.setenv("SMILE_CACHE_DIR", str(folder))
    model = Path(fixture_models["shift"]).read_bytes()
    _Handler.files["m.onnx"] = model
    use_registry(monkeypatch, info_for(server, sha256=hashlib.sha256(model).hexdigest(), size=len(model)))
    assert run("models", "pull", "dl").exit_code == 0
    res = run("models", "path", "dl")
    assert res.exit_code == 0 and res.stdout.strip() == str(folder / "dl-1.0.onnx")
    assert run("models", "verify", "dl").exit_code == 0


def test_cache_dir_expands_the_home_folder(tmp_path, monkeypatch):
    """Before: SMILE_CACHE_DIR='~/models' (quoted, so no shell expanded it) was a folder named '~'
    in the current folder for the .part, and pooch's expanded one for the model."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SMILE_CACHE_DIR", "~/models")
    assert registry.cache_dir() == tmp_path / "home" / "models"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SMILE_CACHE_DIR", "rel/cache")
    assert registry.cache_dir() == tmp_path / "rel" / "cache"


# ----------------------------------------------------------------------------- the commands


def test_a_damaged_bundled_model_says_reinstall_not_pull(tmp_path, monkeypatch):
    """Before: 'run smile models pull NAME', which cannot fetch a bundled model (it has no address)."""
    (tmp_path / "b.onnx").write_bytes(DATA[:-1] + b"\x00")
    info = ModelInfo(name="b", version="1", file="b.onnx", sha256=SHA, size=len(DATA), license="CC0", bundled=True)
    monkeypatch.setattr(registry, "_models_dir", lambda: tmp_path)
    monkeypatch.setattr(registry, "_registry", lambda: ("b", (info,)))
    monkeypatch.delenv("SMILE_MODEL", raising=False)
    for args in (("models", "pull", "b"), ("models", "verify"), ("models", "path")):
        res = run(*args)
        assert res.exit_code == 6, args
        line = one_line(res.stderr)
        assert "reinstall" in line and "pip install --force-reinstall smile-filter" in line
        assert "smile models pull" not in line
    rows = json.loads(run("models", "list", "--json").stdout)
    assert rows[0]["state"] == "damaged" and rows[0]["installed"] is False


def test_models_path_never_downloads(server, cache, monkeypatch):
    """Before: with SMILE_MODEL naming a registry model, 'smile models path' downloaded it."""
    use_registry(monkeypatch, info_for(server))
    monkeypatch.setenv("SMILE_MODEL", "dl")
    res = run("models", "path")
    assert res.exit_code == 6 and "smile models pull dl" in one_line(res.stderr)
    assert _Handler.log == [] and leftovers(cache) == []


def test_pull_checks_every_name_before_downloading(server, cache, monkeypatch):
    use_registry(monkeypatch, info_for(server))
    res = run("models", "pull", "dl", "nosuch")
    assert res.exit_code == 6 and "unknown model 'nosuch'" in one_line(res.stderr)
    assert _Handler.log == [] and leftovers(cache) == []


def test_list_states_and_the_selected_model(server, cache, monkeypatch):
    use_registry(monkeypatch, info_for(server))
    cache.mkdir()
    (cache / "dl-1.0.onnx.part").write_bytes(DATA[:1000])
    monkeypatch.setenv("SMILE_MODEL", "dl")
    res = run("models", "list")
    assert res.exit_code == 0
    assert f"dl (SMILE_MODEL)  1.0  partial download (1000 of {len(DATA)} bytes)  102.4 kB" in res.stdout
    rows = {r["name"]: r for r in json.loads(run("models", "list", "--json").stdout)}
    default = registry.default_model_name()
    assert rows["dl"]["selected"] is True and rows[default]["selected"] is False and rows[default]["default"] is True
    (cache / "x.onnx").write_bytes(b"x")  # (a file that is there, but no model: said to be refused, and why)
    monkeypatch.setenv("SMILE_MODEL", str(cache / "x.onnx"))
    res = run("models", "list")
    assert f"SMILE_MODEL={cache / 'x.onnx'}: 'smile' will refuse to run (exit 6): " in res.stdout
    rows = json.loads(run("models", "list", "--json").stdout)
    assert not any(r["selected"] for r in rows)


def test_list_sizes_and_checksums_match_the_bundled_files():
    for m in registry.list_models():
        if m.bundled:
            path = registry.local_path(m)
            assert path.stat().st_size == m.size and registry.sha256_of(path) == m.sha256


def test_a_folder_where_the_model_file_belongs_gets_one_answer(server, cache, monkeypatch):
    info = info_for(server)
    use_registry(monkeypatch, info)
    (cache / "dl-1.0.onnx").mkdir(parents=True)
    rows = {r["name"]: r for r in json.loads(run("models", "list", "--json").stdout)}
    assert rows["dl"]["state"] == "corrupt" and "is not a regular file (a folder?)" in rows["dl"]["problem"]
    for args in (("models", "verify"), ("models", "path", "dl"), ("models", "pull", "dl")):
        res = run(*args)
        assert res.exit_code == 6, (args, res.stdout, res.stderr)
        assert "move it away" in one_line(res.stderr), args
