"""Issue #19, part 3: ``smile PHOTO... --ray ADDRESS`` and ``smile_cli.ray_data.smile_dataset``.

The cluster tests start a Ray cluster of their own (``ray start --head --block`` plus a second
node process, one CPU each; the head also runs Ray Client's server, for ``--ray ray://``),
compare every result with ``-j 1`` byte for byte, then stop both processes (by their ids).
They need Ray: ``pip install ".[ray]"``; without it they are skipped.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageCms

from batch_reports import comparable as _comparable, file_bytes as _files
from smile_cli.main import cli

HAVE_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason='Ray is not installed: pip install ".[ray]" to run the Ray tests')
TIMEOUT = 180


def smile(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "smile_cli", *map(str, args)], capture_output=True, text=True,
                          timeout=TIMEOUT, env=env)


@pytest.fixture(scope="module")
def photos(tmp_path_factory, astronaut) -> Path:
    """JPEG with EXIF (rotated) and an ICC profile, 16-bit PNG, lossless WebP, RGBA PNG, a text
    file and a faceless picture."""
    import cv2

    d = tmp_path_factory.mktemp("ray-in")
    a = astronaut[::2, ::2]
    exif = Image.Exif()
    exif[0x010F] = "SmileTest"  # Make
    exif[0x0112] = 6  # rotated: the engine turns it upright
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(np.ascontiguousarray(np.rot90(a, 1))).save(d / "a.jpg", quality=88, exif=exif, icc_profile=icc)
    cv2.imwrite(str(d / "b16.png"), np.roll(a, 3, axis=1)[..., ::-1].astype(np.uint16) * 257)
    Image.fromarray(np.roll(a, 5, axis=0)).save(d / "c.webp", lossless=True)
    Image.fromarray(np.concatenate([a, np.full(a.shape[:2] + (1,), 200, np.uint8)], 2)).save(d / "d.png")
    (d / "e.jpg").write_text("not a photo")
    Image.fromarray(np.full((60, 80, 3), 120, np.uint8)).save(d / "f.png")
    return d


@pytest.fixture(scope="module")
def reference(photos, fixture_models, tmp_path_factory):
    """``-j 1``'s files and report."""
    out = tmp_path_factory.mktemp("ray-ref")
    p = smile(photos, "--out-dir", out, "--model", fixture_models["shift"], "--keep-unchanged", "--json", "-j", "1")
    assert p.returncode == 4, p.stderr
    return out, _comparable(json.loads(p.stdout))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A two-node Ray cluster on this machine (one CPU per node); yields its address, the
    environment that reaches it (its authentication token) and its Ray Client address (ray://)."""
    if not HAVE_RAY:
        pytest.skip('Ray is not installed: pip install ".[ray]" to run the Ray tests')
    ray_cli = Path(sys.executable).with_name("ray")
    port, client_port = _free_port(), _free_port()
    address = f"127.0.0.1:{port}"
    logs = tmp_path_factory.mktemp("ray-logs")
    token = logs / "auth_token"  # Ray's token authentication, with a token of this cluster's own
    token.write_text(secrets.token_hex(32))
    env = _cluster_env(token)
    common = ["--num-cpus=1", "--block", "--disable-usage-stats"]
    procs = []
    with _address_file_kept():
        try:
            procs.append(subprocess.Popen([str(ray_cli), "start", "--head", f"--port={port}", "--include-dashboard=false",
                                           f"--ray-client-server-port={client_port}", *common], env=env,
                                          stdout=open(logs / "head.txt", "w"), stderr=subprocess.STDOUT))
            check = ("import ray, sys, time\nray.init(address=sys.argv[1], logging_level='ERROR')\n"
                     "t = time.time()\nwhile ray.cluster_resources().get('CPU', 0) < 2 and time.time() - t < 90: time.sleep(0.5)\n"
                     "print(ray.cluster_resources().get('CPU', 0))")
            _wait_for_port(port, procs[0], logs / "head.txt")
            procs.append(subprocess.Popen([str(ray_cli), "start", f"--address={address}", *common], env=env, stdout=open(logs / "node.txt", "w"), stderr=subprocess.STDOUT))
            p = subprocess.run([sys.executable, "-c", check, address], capture_output=True, text=True, timeout=180, env=env)
            assert p.returncode == 0 and p.stdout.split()[-1] == "2.0", (p.stdout, p.stderr[-2000:])
            _wait_for_port(client_port, procs[0], logs / "head.txt")
            yield address, env, f"ray://127.0.0.1:{client_port}"
        finally:
            _stop(procs)


def _cluster_env(token: Path) -> dict:
    """The environment of a test cluster's nodes and of the smile runs that reach it."""
    # RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S: Ray 2.6x nodes wait up to 30 s on SIGTERM for their
    # work to drain, and Ray Data's own actors never do; these nodes stop at once.
    # GRPC_ENABLE_FORK_SUPPORT: Ray Client's server forks a server for each client while gRPC runs
    # threads, and gRPC's fork handlers then sometimes kill that child (ray-project/ray#63202)
    return dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token),
                RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0", GRPC_ENABLE_FORK_SUPPORT="0")


def _wait_for_port(port: int, proc: subprocess.Popen, log: Path, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        assert proc.poll() is None, log.read_text()
        time.sleep(0.3)
    raise AssertionError(f"nothing listens on port {port} after {seconds} s: {log.read_text()[-2000:]}")


def _stop(procs: list) -> None:
    """SIGTERM to `ray start --block` stops that node's processes."""
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def _address_file_kept():
    """`ray start --head` leaves its cluster's address where `ray.init()` and `--ray auto` look
    (stopped by a signal, it never removes it): the file is put back as it was at the end."""
    from ray._common.utils import get_ray_address_file

    address_file = Path(get_ray_address_file(None))
    address_before = address_file.read_bytes() if address_file.is_file() else None
    try:
        yield
    finally:
        try:
            if address_before is not None:
                address_file.write_bytes(address_before)
            elif address_file.is_file():
                address_file.unlink()
        except OSError:
            pass


@needs_ray
def test_ray_cluster_gives_the_same_bytes_and_report_as_j1(cluster, photos, reference, fixture_models, tmp_path):
    ref_dir, ref_doc = reference
    out = tmp_path / "out"
    address, env, _ = cluster
    p = smile(photos, "--out-dir", out, "--model", fixture_models["shift"], "--keep-unchanged", "--json", "--ray", address,
              env=env)
    assert p.returncode == 4, p.stderr  # e.jpg (not a photo) is the first failure, as with -j 1
    assert _comparable(json.loads(p.stdout)) == ref_doc
    assert _files(out) == _files(ref_dir)
    with Image.open(out / "a.smile.jpg") as im:  # EXIF, ICC and 16 bits survived the trip as bytes
        assert im.getexif().get(0x010F) == "SmileTest" and im.info.get("icc_profile") and im.size == (256, 256)
    import cv2

    assert cv2.imread(str(out / "b16.smile.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    errors = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert errors == [f"smile: error: {photos / 'e.jpg'}: not an image, or a format Smile cannot read "
                      "(use JPEG, PNG, TIFF, WebP, BMP, AVIF or HEIC)"], p.stderr


_ENTRY = """
import json, sys
from pathlib import Path
import ray
from smile_cli.ray_data import smile_dataset
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
folder, model = sys.argv[2], sys.argv[3]
files = [str(p) for p in sorted(Path(folder).iterdir()) if p.name != "e.jpg"]
ds = ray.data.read_binary_files(files, include_paths=True, ray_remote_args={"num_cpus": 0.25})  # (1-CPU nodes)
rows = smile_dataset(ds, model=model, keep_unchanged=True, actors=2).take_all()
out = {}
for row in rows:
    rec = json.loads(row["report"])
    out[Path(row["path"]).name] = [rec["status"], rec["faces_found"], None if row["smiled"] is None else bytes(row["smiled"]).hex()]
print(json.dumps(out))
"""


@needs_ray
def test_smile_dataset_maps_bytes_to_smiled_bytes_and_records(cluster, photos, reference, fixture_models):
    ref_dir, _ = reference
    address, env, _ = cluster
    p = subprocess.run([sys.executable, "-c", _ENTRY, address, str(photos), str(fixture_models["shift"])],
                       capture_output=True, text=True, timeout=TIMEOUT, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    ref = _files(ref_dir)
    assert sorted(got) == ["a.jpg", "b16.png", "c.webp", "d.png", "f.png"]
    for name, (status, faces, data) in got.items():
        stem, ext = name.rsplit(".", 1)
        assert bytes.fromhex(data) == ref[f"{stem}.smile.{ext}"], name
        assert (status, faces) == (("unchanged", 0) if name == "f.png" else ("ok", 1))


def _actor(model: Path, prefix: str):
    from smilecore.decode import DEFAULT_MAX_PIXELS
    from smile_cli.ray_data import SmileActor

    settings = dict(strength=1.0, faces="all", min_face=None, keep_unchanged=True, quality=None,
                    max_pixels=DEFAULT_MAX_PIXELS, ext=None, tmp_prefix=prefix)
    return SmileActor(str(model), settings)


def _temps(prefix: str) -> list[str]:
    import tempfile

    return [n for n in os.listdir(tempfile.gettempdir()) if n.startswith(prefix)]


def test_the_actor_reads_local_photos_where_they_are_and_gives_j1_bytes(photos, reference, fixture_models, monkeypatch):
    """The actor itself (no cluster): a local photo is read in place (no private copy), a photo
    given as bytes or smiled in place goes through a private copy; the same bytes as -j 1, the
    photos untouched, no private file left."""
    ref_dir, _ = reference
    from smile_cli import ray_data

    prefix = f"smile-ray-test-{secrets.token_hex(4)}-"
    actor = _actor(fixture_models["shift"], prefix)
    made = []
    monkeypatch.setattr(ray_data, "_temp_file", lambda *a, _f=ray_data._temp_file: made.append(a) or _f(*a))
    before = {p.name: p.read_bytes() for p in photos.iterdir()}
    names = ["a.jpg", "b16.png", "c.webp", "f.png"]
    batch = {"number": np.arange(1, 5), "path": np.array([str(photos / n) for n in names], dtype=object),
             "name": np.array(names, dtype=object), "ext": np.array([Path(n).suffix for n in names], dtype=object),
             "in_place": np.array([False, False, True, False])}
    out = actor(batch)
    for i, name in enumerate(names):
        stem, ext = name.rsplit(".", 1)
        rec = json.loads(out["report"][i])
        if name == "f.png":  # no face: copied as it is, but left alone in place
            assert rec["status"] == "unchanged" and out["smiled"][i] == (photos / name).read_bytes()
        else:
            assert rec["status"] == "ok" and rec["input"] == name, rec
            assert out["smiled"][i] == (ref_dir / f"{stem}.smile.{ext}").read_bytes(), name
    assert list(out["number"]) == [1, 2, 3, 4]
    assert [a[0] for a in made] == [".jpg", ".png", ".webp", ".png"]  # one result file each; the photos read in place
    given = actor({"bytes": np.array([(photos / "a.jpg").read_bytes()], dtype=object), "path": np.array(["x/a.jpg"], dtype=object)})
    assert given["smiled"][0] == (ref_dir / "a.smile.jpg").read_bytes()
    broken = actor({"path": np.array([str(photos / "e.jpg")], dtype=object), "name": np.array(["e.jpg"], dtype=object)})
    assert given["smiled"][0] is not None and broken["smiled"][0] is None
    assert json.loads(broken["report"][0])["error"]["message"].startswith("e.jpg: not an image")
    assert {p.name: p.read_bytes() for p in photos.iterdir()} == before
    assert _temps(prefix) == []


def test_batches_stay_small_and_spread_over_the_actors():
    from smile_cli.ray_data import MAX_BATCH, batch_size_for

    assert batch_size_for(300, 2) == MAX_BATCH == 4
    assert batch_size_for(20, 2) == 2 and batch_size_for(7, 2) == 1 and batch_size_for(0, 2) == 1
    assert batch_size_for(64, 16) == 1 and batch_size_for(64, 0) == MAX_BATCH


@needs_ray
def test_ray_local_starts_and_stops_its_own_cluster(photos, reference, fixture_models, tmp_path):
    ref_dir, ref_doc = reference
    out = tmp_path / "out"
    chosen = [photos / "a.jpg", photos / "d.png"]
    p = smile(*chosen, "--out-dir", out, "--model", fixture_models["shift"], "--ray", "local", "--ray-actors", "2", "-q")
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert _files(out) == {k: v for k, v in _files(ref_dir).items() if k in ("a.smile.jpg", "d.smile.png")}


@needs_ray
def test_a_cluster_that_does_not_answer_is_said_at_once(photos, fixture_models, tmp_path):
    """`--ray auto` finding the address of a cluster that is gone (stopped without `ray stop`):
    one line and exit 2, where ray.init would wait forever."""
    port = _free_port()  # (nothing listens there)
    env = dict(os.environ, RAY_ADDRESS=f"127.0.0.1:{port}")
    for address in ("auto", f"127.0.0.1:{port}"):
        p = subprocess.run([sys.executable, "-m", "smile_cli", str(photos / "a.jpg"), str(photos / "d.png"), "--out-dir",
                            str(tmp_path / "o"), "--model", str(fixture_models["shift"]), "--ray", address],
                           capture_output=True, text=True, timeout=60, env=env)
        assert p.returncode == 2, p.stderr
        lines = p.stderr.splitlines()  # (Ray names this machine by its address: 127.0.0.1 or another)
        assert len(lines) == 1 and lines[0].startswith(f"smile: error: --ray {address}: cannot reach the Ray cluster at "), p.stderr
        assert lines[0].endswith(f":{port} (Connection refused); is it running? (ray status)"), p.stderr
    assert not (tmp_path / "o").exists() or list((tmp_path / "o").iterdir()) == []


def test_without_ray_the_option_says_how_to_get_it(fixture_models, photos, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    r = CliRunner().invoke(cli, [str(photos / "a.jpg"), str(photos / "d.png"), "--out-dir", str(tmp_path / "o"),
                                 "--model", str(fixture_models["shift"]), "--ray", "auto"], catch_exceptions=False)
    assert r.exit_code == 2, r.stderr
    # (the extra's own requirement, which works without a checkout too)
    assert 'pip install "ray[data,client]>=2.51" (the [ray] extra)' in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists() or list((tmp_path / "o").iterdir()) == []


def test_debug_is_refused_with_ray(fixture_models, photos, tmp_path):
    if not HAVE_RAY:
        pytest.skip('Ray is not installed: pip install ".[ray]" to run the Ray tests')
    r = CliRunner().invoke(cli, [str(photos / "a.jpg"), str(photos / "d.png"), "--out-dir", str(tmp_path / "o"),
                                 "--model", str(fixture_models["shift"]), "--ray", "local", "--debug", str(tmp_path / "d")],
                           catch_exceptions=False)
    assert r.exit_code == 2 and "--debug" in r.stderr, r.stderr


@needs_ray
def test_sigterm_stops_a_ray_local_run_and_leaves_only_whole_files(photos, reference, fixture_models, tmp_path):
    import signal

    ref_dir, _ = reference
    many = tmp_path / "many"
    many.mkdir()
    count = 400  # enough that the run cannot finish before the signal arrives, even in batches of 4
    for i in range(count):
        (many / f"p{i:03d}.png").write_bytes((photos / "d.png").read_bytes())
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "smile_cli", str(many), "--out-dir", str(out), "--model",
                             str(fixture_models["shift"]), "--ray", "local", "-q"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + TIMEOUT
    # wait for a finished photo (a writer's temporary file, ".<name>.<id>.smile-tmp", is not one:
    # the signal removes it, and a run stopped then would rightly leave nothing)
    while time.monotonic() < deadline and proc.poll() is None and not (
            out.is_dir() and any(not p.name.startswith(".") for p in out.iterdir())):
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "smile: interrupted (SIGTERM)" in err and "Traceback" not in err, err
    expected = (ref_dir / "d.smile.png").read_bytes()
    written = list(out.iterdir())
    assert 0 < len(written) < count and all(p.read_bytes() == expected for p in written)  # whole files only


# ---------------------------------------------------------------------- --ray ray://HOST:PORT (Ray Client)


def _ours_on_the_cluster() -> list[str]:
    """The processes of a `smile --ray` run on this machine's Ray nodes (Linux: their titles)."""
    found = []
    if not os.path.isdir("/proc"):
        return found
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                title = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith("ray::") and ("ClientDriver" in title or "SmileActor" in title):
            found.append(f"{entry} {title.strip()}")
    return found


def _none_of_ours_left(seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while _ours_on_the_cluster() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _ours_on_the_cluster() == []


def _many(photos: Path, folder: Path, count: int) -> Path:
    folder.mkdir()
    for i in range(count):
        (folder / f"p{i:03d}.png").write_bytes((photos / "d.png").read_bytes())
    return folder


def _wait_for_a_result(proc: subprocess.Popen, out: Path) -> None:
    """Until a finished photo is in ``out`` (a writer's temporary file, ".<name>.<id>.smile-tmp", is not one)."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None and not (
            out.is_dir() and any(not p.name.startswith(".") for p in out.iterdir())):
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()


@needs_ray
def test_ray_client_gives_the_same_bytes_and_report_as_j1(cluster, photos, reference, fixture_models, tmp_path):
    """`--ray ray://HOST:PORT`: Ray Data does not run in a Ray Client, so it runs in an actor on the
    cluster and the results come back to smile as bytes.  RAY_AUTH_TOKEN_PATH alone names the
    token (Ray itself sends one to an address only with RAY_AUTH_MODE=token: before, the client
    waited 30 s and said "ray client connection timeout")."""
    ref_dir, ref_doc = reference
    _, env, client = cluster
    env = {k: v for k, v in env.items() if k != "RAY_AUTH_MODE"}
    out = tmp_path / "out"
    p = smile(photos, "--out-dir", out, "--model", fixture_models["shift"], "--keep-unchanged", "--json", "--ray", client,
              env=env)
    assert p.returncode == 4, p.stderr  # e.jpg (not a photo) is the first failure, as with -j 1
    assert _comparable(json.loads(p.stdout)) == ref_doc
    assert _files(out) == _files(ref_dir)
    errors = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert errors == [f"smile: error: {photos / 'e.jpg'}: not an image, or a format Smile cannot read "
                      "(use JPEG, PNG, TIFF, WebP, BMP, AVIF or HEIC)"], p.stderr
    _none_of_ours_left()  # the run's actor on the cluster and its pool are gone


#: ``smile`` with ``ray.init`` refused: a mistake said only after it was called (with Ray's retries, 20 to 30 s)
#: is an internal error, exit 1.
_NO_RAY_INIT = """
import runpy, ray
def init(*args, **kwargs):
    raise AssertionError("ray.init was called: the mistake was not found before it")
ray.init = init
runpy.run_module("smile_cli", run_name="__main__", alter_sys=True)
"""


@needs_ray
def test_ray_client_token_and_address_mistakes_are_one_line(cluster, photos, fixture_models, tmp_path):
    gcs, env, client = cluster
    home = tmp_path / "home"  # (no ~/.ray/auth_token there)
    home.mkdir()
    bare = {k: v for k, v in env.items() if not k.startswith("RAY_AUTH_")}
    bare["HOME"] = str(home)
    wrong = tmp_path / "wrong_token"
    wrong.write_text(secrets.token_hex(32))
    nowhere = f"ray://127.0.0.1:{_free_port()}"
    cases = [
        (bare, client, f"--ray {client}: the cluster asks for its token: set RAY_AUTH_TOKEN_PATH to a file holding it "
                       "(`ray get-auth-token` on its head prints it)"),
        ({**bare, "RAY_AUTH_TOKEN_PATH": str(wrong)}, client,
         f"--ray {client}: the cluster refused the token from RAY_AUTH_TOKEN_PATH ({wrong}): it is not this cluster's "
         "(`ray get-auth-token` on its head prints the right one)"),
        ({**bare, "RAY_AUTH_TOKEN": "not-the-token"}, client, f"--ray {client}: the cluster refused the token from RAY_AUTH_TOKEN:"),
        ({**bare, "RAY_AUTH_TOKEN_PATH": str(tmp_path / "none")}, client,
         f"--ray {client}: RAY_AUTH_TOKEN_PATH names {tmp_path / 'none'}, which cannot be read or is empty"),
        (env, nowhere, f"--ray {nowhere}: cannot reach the Ray cluster at 127.0.0.1:{nowhere.rsplit(':', 1)[1]} "
                       "(Connection refused); is its head running with the client server"),
        # the cluster's own address, and auto: before, 20 s and "cannot reach the Ray cluster (Failed to connect...)"
        (bare, gcs, f"--ray {gcs}: the cluster asks for its token: set RAY_AUTH_TOKEN_PATH to a file holding it"),
        ({**bare, "RAY_ADDRESS": gcs}, "auto", "--ray auto: the cluster asks for its token: set RAY_AUTH_TOKEN_PATH"),
        ({**bare, "RAY_AUTH_TOKEN_PATH": str(wrong), "RAY_ADDRESS": gcs}, "auto",
         f"--ray auto: the cluster refused the token from RAY_AUTH_TOKEN_PATH ({wrong}): it is not this cluster's"),
    ]
    for case_env, address, expected in cases:  # (each said before ray.init, which retries for 20 to 30 s)
        p = subprocess.run([sys.executable, "-c", _NO_RAY_INIT, str(photos / "a.jpg"), str(photos / "d.png"), "--out-dir",
                            str(tmp_path / "o"), "--model", str(fixture_models["shift"]), "--ray", address],
                           capture_output=True, text=True, timeout=90, env=case_env)
        assert p.returncode == 2, p.stderr
        lines = p.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"smile: error: {expected}"), p.stderr
    assert not (tmp_path / "o").exists() or list((tmp_path / "o").iterdir()) == []


@needs_ray
def test_sigterm_stops_a_ray_client_run_and_its_actors(cluster, photos, reference, fixture_models, tmp_path):
    import signal

    ref_dir, _ = reference
    _, env, client = cluster
    count = 400  # enough that the run cannot finish before the signal arrives
    many = _many(photos, tmp_path / "many", count)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "smile_cli", str(many), "--out-dir", str(out), "--model",
                             str(fixture_models["shift"]), "--ray", client, "-q"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    _wait_for_a_result(proc, out)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "smile: interrupted (SIGTERM)" in err and "Traceback" not in err, err
    expected = (ref_dir / "d.smile.png").read_bytes()
    written = list(out.iterdir())
    assert 0 < len(written) < count and all(p.read_bytes() == expected for p in written)  # whole files only
    _none_of_ours_left()


@needs_ray
def test_a_ray_client_run_whose_cluster_stops_fails_the_photos_left(photos, reference, fixture_models, tmp_path):
    """The cluster stops half-way (its head is stopped): the results that came are written whole,
    each photo left is one line (exit 1), the report is whole; nothing waits for ever."""
    import signal

    import tempfile

    ref_dir, _ = reference
    started = time.time() - 1
    ray_cli = Path(sys.executable).with_name("ray")
    port, client_port = _free_port(), _free_port()
    token = tmp_path / "auth_token"
    token.write_text(secrets.token_hex(32))
    env = _cluster_env(token)
    count = 300
    many = _many(photos, tmp_path / "many", count)
    out = tmp_path / "out"
    procs = []
    with _address_file_kept():
        try:
            procs.append(subprocess.Popen([str(ray_cli), "start", "--head", f"--port={port}", "--include-dashboard=false",
                                           f"--ray-client-server-port={client_port}", "--num-cpus=1", "--block",
                                           "--disable-usage-stats"], env=env,
                                          stdout=open(tmp_path / "head.txt", "w"), stderr=subprocess.STDOUT))
            _wait_for_port(client_port, procs[0], tmp_path / "head.txt")
            proc = subprocess.Popen([sys.executable, "-m", "smile_cli", str(many), "--out-dir", str(out), "--model",
                                     str(fixture_models["shift"]), "--ray", f"ray://127.0.0.1:{client_port}", "--json"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            try:
                _wait_for_a_result(proc, out)
                procs[0].send_signal(signal.SIGTERM)  # the whole cluster stops
                doc, err = proc.communicate(timeout=120)
            finally:
                if proc.poll() is None:
                    proc.kill()
        finally:
            _stop(procs)
            # the actors stopped with the cluster, half-way through a photo: their private files stay
            # in the node's temporary folder (here this machine's), which the test empties
            for leftover in Path(tempfile.gettempdir()).glob("*smile-ray-*"):
                try:
                    if leftover.stat().st_mtime >= started:
                        leftover.unlink()
                except OSError:
                    pass
    assert proc.returncode == 1 and "Traceback" not in err, err
    reports = json.loads(doc)["photos"]
    done = [r for r in reports if r["status"] == "ok"]
    failed = [r for r in reports if r["status"] == "failed"]
    assert len(reports) == count and len(done) + len(failed) == count and failed, [r["status"] for r in reports]
    expected = (ref_dir / "d.smile.png").read_bytes()
    assert sorted(p.name for p in out.iterdir()) == sorted(Path(r["output"]).name for r in done)  # whole files only
    assert all(p.read_bytes() == expected for p in out.iterdir())
    lines = err.splitlines()
    assert len(lines) == len(failed), err
    for line, r in zip(lines, failed):
        assert line.startswith(f"smile: error: {r['input']}: not smiled: the ") and (
            "the Ray cluster stopped" in line or "the connection to the Ray cluster was lost" in line), line
