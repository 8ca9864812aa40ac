"""Smile on a Ray cluster: ``smile PHOTO... --ray ADDRESS`` and :func:`smile_dataset`.

Ray is optional (``pip install ".[ray]"``).  Photos go through Ray Data: a ``map_batches`` pool
of actors, each holding one model (one ONNX Runtime session per network, one thread), sized
from the cluster's CPUs (``--ray-actors`` to choose).  Photos are decoded by the engine
(:func:`smilecore.decode.load_image`) inside the actor: ``smile --ray`` sends paths, which the
actor reads where they are; :func:`smile_dataset` sends bytes, which go through a private
temporary copy; so EXIF, ICC profiles and 16 bits survive (Ray's own image reader drops them); the
actor runs the very function ``-j 1`` uses (:func:`smile_cli.photo.process_photo`) and returns the
encoded result, which the ``smile`` process writes with the engine's atomic writer.  The
results are the same bytes as ``-j 1``'s.

``ADDRESS``: ``auto`` (the cluster this machine belongs to, e.g. after ``ray start``),
``ray://HOST:10001`` (Ray Client: photos are read on the cluster's nodes, so they must be
reachable there, e.g. on a shared file system or as ``s3://`` URIs in :func:`smile_dataset`),
or ``local`` (a throwaway cluster on this machine, stopped at the end).

For people who already hold a Ray Dataset::

    import ray
    from smile_cli.ray_data import smile_dataset

    ds = ray.data.read_binary_files("s3://bucket/photos/", include_paths=True)
    out = smile_dataset(ds, strength=1.5, ext=".jpg")
    for row in out.iter_rows():     # row["smiled"]: encoded bytes (None when the photo failed)
        ...                         # row["report"]: JSON of the photo's --json entry
"""
from __future__ import annotations

import json
import os
import signal
import tempfile
import time
from pathlib import Path

from smilecore.errors import EXIT_CODES, ImageTooLargeError, InputError, ModelError, NoFaceError, SmileError, UsageError, WriteError

from . import report as rep
from .interrupt import Terminated

#: Environment variable marking the processes of the ``--ray local`` cluster this run starts.
OWNER_VAR = "SMILE_RAY_OWNER"
#: The most photos one ``map_batches`` call of ``smile --ray`` smiles (see :func:`batch_size_for`).
MAX_BATCH = 4
INSTALL_HINT = 'pip install "smile-filter[ray]" (from a checkout: pip install ".[ray]")'
_ERRORS = {cls.code: cls for cls in (SmileError, UsageError, NoFaceError, InputError, ImageTooLargeError, ModelError, WriteError)}


def import_ray():
    """``ray`` and ``ray.data``, or a :class:`UsageError` (exit 2) saying how to install them."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UsageError(f"--ray needs Ray Data, which is not installed: {INSTALL_HINT}") from None
    return ray


def connect(address: str):
    """Join (or, for ``local``, start) a Ray cluster quietly; returns the ``ray`` module."""
    import logging

    ray = import_ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")  # (the C++ core's notes would land on stderr)
    if not ray.is_initialized():
        kw = dict(log_to_driver=False, logging_level=logging.ERROR, configure_logging=True)
        if address == "local":
            kw["include_dashboard"] = False
        if address != "local" and not address.startswith("ray://"):
            _check_reachable(address)
        handlers = _signal_handlers()
        if address == "local":  # (the cluster's processes inherit it: see _stop_half_started)
            os.environ[OWNER_VAR] = f"{os.getpid()}-{time.time_ns()}"
        try:
            with _quiet_stderr():  # Ray's C++ core says hello on file descriptor 2
                ray.init(address=address, **kw)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UsageError(f"--ray {address}: cannot reach the Ray cluster "
                             f"({' '.join(str(exc).split())[:200]})") from None
        except SystemExit as exc:  # Ray's own SIGTERM handler, set inside ray.init, exits with the signal's number
            _stop_half_started(ray, address)
            raise Terminated(exc.code if isinstance(exc.code, int) and exc.code > 0 else signal.SIGTERM) from None
        except BaseException:  # Ctrl-C (or smile's SIGTERM / SIGHUP) while the cluster starts: stop what started
            _stop_half_started(ray, address)
            raise
        finally:
            # ray.init installs its own SIGTERM handler (exit 15, a C++ stack dump): smile's own
            # (Ctrl-C, SIGTERM, SIGHUP -> exit 130/143/129, the cluster stopped) comes back
            for sig, handler in handlers.items():
                try:
                    signal.signal(sig, handler)
                except (OSError, ValueError, TypeError):
                    pass
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    for name in ("ray.data", "ray"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return ray


def _stop_half_started(ray, address: str) -> None:
    """Stop what an interrupted ``ray.init`` started.  For ``local``, ``ray.shutdown`` does not stop
    every process of a cluster interrupted while it starts (its dashboard and runtime-env agents
    then outlive smile, for minutes): see :func:`_kill_leftovers`."""
    try:
        if address == "local":
            _stop_monitor(ray)
        ray.shutdown()
    except Exception:  # noqa: BLE001 - stopping anyway
        pass
    if address == "local":
        _kill_leftovers()


def _kill_leftovers() -> None:
    """Kill (Linux) what is left of the ``--ray local`` cluster this run started after
    ``ray.shutdown``: the processes whose environment carries this run's :data:`OWNER_VAR`."""
    token = os.environ.get(OWNER_VAR)
    if not token or not os.path.isdir("/proc"):
        return
    mark = f"{OWNER_VAR}={token}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if mark in env:
            try:
                os.kill(int(entry), signal.SIGKILL)
            except OSError:
                pass


def _check_reachable(address: str, seconds: float = 5.0) -> None:
    """A :class:`UsageError` when nothing answers at the cluster ``address`` (``auto`` or
    ``HOST:PORT``) leads to.  ``ray.init`` would wait forever there, e.g. on a cluster stopped
    without ``ray stop``, whose address ``auto`` still finds in Ray's temporary folder.
    (Ray's address resolution is private: when it cannot be used, nothing is checked.)"""
    import socket

    try:
        from ray._private.services import canonicalize_bootstrap_address

        found = canonicalize_bootstrap_address(address)
        host, port = found.rsplit(":", 1)
        port = int(port)
    except Exception:  # noqa: BLE001 - no cluster found, a bad address: ray.init says so
        return
    try:
        socket.create_connection((host.strip("[]"), port), timeout=seconds).close()
    except OSError as exc:
        raise UsageError(f"--ray {address}: cannot reach the Ray cluster at {found} "
                         f"({exc.strerror or exc}); is it running? (ray status)") from None


def _signal_handlers() -> dict:
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    out = {}
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) is not None:
            out[sig] = signal.getsignal(sig)
    return out


class _quiet_stderr:
    """File descriptor 2 pointed at the null device for a while (C++ logging ignores sys.stderr)."""

    def __enter__(self):
        import sys

        try:
            sys.stderr.flush()
            self.saved = os.dup(2)
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 2)
            os.close(null)
        except (OSError, ValueError, AttributeError):
            self.saved = None
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            os.dup2(self.saved, 2)
            os.close(self.saved)


def cluster_cpus(ray) -> int:
    try:
        return max(1, int(ray.cluster_resources().get("CPU", 1)))
    except Exception:  # noqa: BLE001
        return 1


# ---------------------------------------------------------------------- the actor


class SmileActor:
    """One model per actor; ``__call__`` smiles a batch of photos given as bytes (or paths)."""

    def __init__(self, model_path: str, settings: dict):
        os.environ["SMILE_THREADS"] = "1"
        try:
            import cv2

            cv2.setNumThreads(1)
        except Exception:  # noqa: BLE001
            pass
        from smilecore.model import SmileModel

        self.model = SmileModel(model_path, threads=1)
        self.settings = dict(settings)

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        n = len(next(iter(batch.values())))
        paths = batch.get("path")
        names = batch.get("name", paths)
        smiled, reports = [], []
        for i in range(n):
            name = str(names[i]) if names is not None else f"photo{i}"
            data = batch["bytes"][i] if "bytes" in batch else None
            ext = str(batch["ext"][i]) if "ext" in batch and batch["ext"][i] else (self.settings.get("ext") or Path(name).suffix)
            in_place = bool(batch["in_place"][i]) if "in_place" in batch else False
            out, r = self.one(name, data, ext, in_place, path=None if paths is None else str(paths[i]))
            smiled.append(out)
            reports.append(json.dumps({**r.to_dict(), "reason": r.reason}))
        result = {"smiled": np.array(smiled + [None], dtype=object)[:-1], "report": np.array(reports, dtype=object)}
        for key in ("number", "path"):
            if key in batch:
                result[key] = batch[key]
        return result

    def one(self, name: str, data, ext: str, in_place: bool = False, path: str | None = None):
        """(encoded result or None, PhotoReport with ``name`` as its input)."""
        from .inputs import Job
        from .photo import process_photo as _process

        suffix = Path(name).suffix or ".img"
        prefix = self.settings.get("tmp_prefix") or "smile-ray-"
        # the engine reads and writes files: a local photo is read where it is (one read, no copy);
        # bytes, a URI or a photo smiled in place go through a private copy; the result is written
        # to a private file and sent back as bytes; private files are removed below
        direct = data is None and not in_place and path is not None and "://" not in path
        src = Path(path) if direct else _temp_file(suffix, prefix)
        dst = src if in_place else _temp_file(ext if ext.startswith(".") else "." + ext, prefix)
        settings = {k: v for k, v in self.settings.items() if k not in ("ext", "tmp_prefix")}
        try:
            if not direct:
                src.write_bytes(bytes(_read_bytes(path or name) if data is None else data))
            r = _process(Job(input=src, output=dst), self.model, selection=None, number=0, debug_dir=None, **settings)
            wrote = r.status == rep.STATUS_OK or (r.status == rep.STATUS_UNCHANGED and not in_place)
            out = dst.read_bytes() if wrote else None
        except OSError as exc:
            r = rep.PhotoReport(input=src, strength=settings.get("strength", 1.0))
            r.error = InputError(f"{name}: cannot read it ({exc.strerror or exc})")
            out = None
        finally:
            for p in (dst,) if direct else (src, dst):
                try:
                    p.unlink()
                except OSError:
                    pass
        return out, _renamed(r, {str(src): name, str(dst): name if in_place else Path(name).stem + ext})


def _temp_file(suffix: str, prefix: str = "smile-ray-") -> Path:
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix)
    os.close(fd)
    return Path(name)


def _read_bytes(path: str) -> bytes:
    """A file's bytes, from a local path or any URI pyarrow's file systems reach (s3://, gs://...)."""
    if "://" not in path:
        with open(path, "rb") as f:
            return f.read()
    from pyarrow import fs

    filesystem, inner = fs.FileSystem.from_uri(path)
    with filesystem.open_input_stream(inner) as f:
        return f.read()


def _renamed(r: rep.PhotoReport, names: dict[str, str]) -> rep.PhotoReport:
    def fix(text: str) -> str:
        for old, new in names.items():
            text = text.replace(old, new)
        return text

    first = next(iter(names.values()))
    r.input = Path(first)
    r.notes = [fix(n) for n in r.notes]
    r.reason = fix(r.reason) if r.reason else r.reason
    if r.error is not None:
        r.error = type(r.error)(fix(r.error.message))
    return r


def report_from_dict(d: dict, job) -> rep.PhotoReport:
    """A :class:`PhotoReport` for ``job`` from an actor's JSON entry."""
    r = rep.PhotoReport(input=job.input, status=d["status"], faces=d["faces"], strength=d["strength"],
                        size=tuple(d["size"]) if d["size"] else None, seconds=d["seconds"], timings=d["timings"],
                        notes=d["notes"])
    r.reason = d.get("reason")
    if d["error"]:
        cls = _ERRORS.get(d["error"]["code"], SmileError)
        r.error = cls(d["error"]["message"])
    return r


# ---------------------------------------------------------------------- public entry


def smile_dataset(ds, *, strength: float = 1.0, faces="all", min_face: int | None = None, keep_unchanged: bool = False,
                  quality: int | None = None, max_pixels: int | None = None, model=None, ext: str | None = None,
                  actors: int | None = None, batch_size: int = 1):
    """Map a Ray Dataset of photos to smiled photos.

    ``ds`` has a ``bytes`` column (the encoded photo, e.g. from
    ``ray.data.read_binary_files(..., include_paths=True)``) and optionally ``path`` (names the
    photo in messages; its extension is the output format unless ``ext`` is given) and ``ext``
    (per-row output format).  The result has ``smiled`` (encoded bytes; None when the photo
    failed, or was left unchanged in place), ``report`` (JSON: the photo's entry of ``smile
    --json``: status, faces, notes, error) and ``path`` when given.  One actor per CPU of the
    cluster unless ``actors`` says otherwise; each loads ``model`` (default: the bundled one).

    The actors leave one CPU of the cluster to the tasks that read ``ds``; on a cluster of
    one-CPU nodes give those tasks less, e.g. ``read_binary_files(..., ray_remote_args={"num_cpus": 0.25})``,
    or they may find no node with a whole CPU free."""
    from smilecore.decode import DEFAULT_MAX_PIXELS
    from smilecore.registry import resolve_model

    ray = import_ray()
    if isinstance(faces, (list, tuple)):
        faces = [int(i) for i in faces]
    path = str(resolve_model(model).resolve())
    settings = dict(strength=float(strength), faces=faces, min_face=min_face, keep_unchanged=keep_unchanged,
                    quality=quality, max_pixels=DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels, ext=ext)
    return _map(ray, ds, path, settings, actors, batch_size, spare_cpus=1.0)


def pool_size(ray, actors: int | None) -> int:
    """Actors in the pool: ``actors`` if given, else one per CPU of the cluster."""
    return max(1, int(actors) if actors else cluster_cpus(ray))


def batch_size_for(photos: int, actors: int) -> int:
    """Photos per ``map_batches`` call for ``smile --ray``: up to :data:`MAX_BATCH` (each call costs
    Ray Data a task, an Arrow block and a round trip), yet at least four calls per actor, so that
    the actors finish close together."""
    return max(1, min(MAX_BATCH, photos // (4 * max(1, actors))))


def _map(ray, ds, model_path: str, settings: dict, actors: int | None, batch_size: int = 1, spare_cpus: float = 0.0):
    """``ds.map_batches`` through a pool of :class:`SmileActor`; ``spare_cpus`` stay free for the
    tasks that read the photos upstream (actors holding every CPU would leave them waiting forever).
    Each actor holds one batch at work and one waiting (no photos queue behind a busy actor
    while another one idles at the end)."""
    from ray.data import ActorPoolStrategy

    cpus = cluster_cpus(ray)
    n = pool_size(ray, actors)
    per_actor = min(1.0, max(0.05, (cpus - spare_cpus) / n))
    return ds.map_batches(SmileActor, fn_constructor_kwargs={"model_path": model_path, "settings": settings},
                          batch_size=batch_size, batch_format="numpy",
                          compute=ActorPoolStrategy(size=n, max_tasks_in_flight_per_actor=2), num_cpus=per_actor)


# ---------------------------------------------------------------------- smile PHOTO... --ray


class RayBatch:
    """``smile PHOTO... --ray ADDRESS``: the same interface as :class:`smile_cli.parallel.PhotoPool`
    (``model``, ``take(number, bar)``, ``close()``); results arrive in input order."""

    def __init__(self, address: str, actors: int | None, jobs: list, model, settings: dict):
        import smilecore
        from smilecore.video_streams import is_video_path

        import_ray()  # exit 2 with the install command, before anything else
        self.model = smilecore.load_model(model)  # ModelError -> exit 6 before the cluster is asked
        from .video import check_schedule

        check_schedule(settings.get("strength", 1.0), jobs, self.model)
        self.address = address
        self.settings = dict(settings)
        self.jobs = {number: job for number, job in enumerate(jobs, 1)}
        tasks = [(number, job) for number, job in self.jobs.items() if job.problem is None and not is_video_path(job.input)]
        self._ray = None
        self._closed = False
        import uuid

        self._prefix = f"smile-ray-{uuid.uuid4().hex[:12]}-"  # this run's temporary files in the actors
        try:
            self._start(address, actors, tasks)
        except BaseException:
            self.close()  # (a 'local' cluster already started is stopped)
            raise

    def _start(self, address: str, actors: int | None, tasks: list) -> None:
        ray = import_ray()
        self._ray = ray
        connect(address)
        rows = [{"number": number, "path": os.path.abspath(job.input), "name": str(job.input), "ext": job.output.suffix,
                 "in_place": job.output == job.input} for number, job in tasks]
        self._iter = None
        self._pending = set(n for n, _ in tasks)
        self._done: dict[int, rep.PhotoReport] = {}
        if rows:
            from ray.data import DataContext

            DataContext.get_current().execution_options.preserve_order = True
            per = batch_size_for(len(rows), pool_size(ray, actors))
            ds = ray.data.from_items(rows, override_num_blocks=-(-len(rows) // per))  # (one block per batch)
            out = _map(ray, ds, str(self.model.path), {**self.settings, "ext": None, "tmp_prefix": self._prefix}, actors, per)
            self._iter = iter(out.iter_rows())

    def take(self, number: int, bar=None) -> rep.PhotoReport:
        from .photo import process_photo as _process

        job = self.jobs[number]
        if number not in self._pending:  # a missing file: said as -j 1 says it
            r = _process(job, None, selection=None, number=number, debug_dir=None, **self.settings)
            if bar is not None:
                bar.update(1)
            return r
        while number not in self._done:
            row = next(self._iter)
            self._arrived(row, bar)
        return self._done.pop(number)

    def _arrived(self, row: dict, bar) -> None:
        from smilecore.atomic import write_atomic

        number = int(row["number"])
        job = self.jobs[number]
        r = report_from_dict(json.loads(row["report"]), job)
        data = row.get("smiled")
        if r.status != rep.STATUS_FAILED:
            r.output = job.output
            if data is not None:
                try:
                    write_atomic(job.output, lambda f: f.write(bytes(data)))
                except WriteError as exc:
                    r.error, r.status, r.output = exc, rep.STATUS_FAILED, None
        self._pending.discard(number)
        self._done[number] = r
        if bar is not None:
            bar.update(1)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._iter = None
        try:
            if self._ray is not None and self._ray.is_initialized():
                if self.address == "local":
                    _stop_monitor(self._ray)
                self._ray.shutdown()  # (for 'local' this stops the throwaway cluster)
        except Exception:  # noqa: BLE001
            pass
        if self.address == "local":  # actors stopped half-way through a photo leave their copies here
            _kill_leftovers()  # (and an interrupted start, agents)
            import glob

            for leftover in glob.glob(os.path.join(tempfile.gettempdir(), glob.escape(self._prefix) + "*")):
                try:
                    os.unlink(leftover)
                except OSError:
                    pass


def _stop_monitor(ray) -> None:
    """Stop the autoscaler monitor of the local cluster this process started (nothing to scale on
    one machine).  ``ray.shutdown()`` stops Ray's processes one after another, the monitor after
    the cluster's control store, and on SIGTERM the monitor tries to report to that stopped store
    until it is killed a second later: a second of every ``--ray local`` run.  Ray's own objects
    are private, so anything unexpected leaves the shutdown as it was."""
    try:
        from ray._private import ray_constants, worker

        node = worker._global_node
        for info in list(node.all_processes.get(ray_constants.PROCESS_TYPE_MONITOR, [])):
            if info.process.poll() is None:
                info.process.kill()
                info.process.wait(5)
    except Exception:  # noqa: BLE001 - only a speed matter
        pass


# (exit statuses stay the documented ones)
assert set(_ERRORS) <= set(EXIT_CODES)
