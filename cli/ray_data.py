"""Smile on a Ray cluster: ``smile PHOTO... --ray ADDRESS`` and :func:`smile_dataset`.

Ray is optional (the ``[ray]`` extra: :data:`smile_cli.ray_connect.INSTALL_HINT`).  Photos go through Ray Data: a ``map_batches`` pool of actors,
each holding one model (one thread), sized from the cluster's CPUs (``--ray-actors`` to choose).  The engine
decodes each photo inside the actor (``smile --ray`` sends paths, read where they are; :func:`smile_dataset`
bytes, through a private copy), so EXIF, ICC profiles and 16 bits survive (Ray's image reader drops them); the
actor runs ``-j 1``'s own :func:`smile_cli.photo.process_photo` and returns the encoded result, which ``smile``
writes with the engine's atomic writer: the same bytes as ``-j 1``'s.

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
import tempfile
import time
from pathlib import Path

from smilecore.errors import EXIT_CODES, ImageTooLargeError, InputError, ModelError, NoFaceError, SmileError, UsageError, WriteError

from . import report as rep
from .ray_connect import connect, import_ray, is_client, kill_leftovers, stop_monitor
#: The most photos one ``map_batches`` call of ``smile --ray`` smiles (see :func:`batch_size_for`).
MAX_BATCH = 4
_ERRORS = {cls.code: cls for cls in (SmileError, UsageError, NoFaceError, InputError, ImageTooLargeError, ModelError, WriteError)}


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
    from smilecore import arguments
    from smilecore.decode import DEFAULT_MAX_PIXELS
    from smilecore.registry import resolve_model

    ray = import_ray()
    # checked here, once, by the engine's rules (not by each actor, row after row)
    strength, faces = arguments.check_strength(strength), arguments.check_face_choice(faces)
    min_face = arguments.check_min_face(min_face)
    max_pixels = DEFAULT_MAX_PIXELS if max_pixels is None else arguments.check_count(max_pixels, "max_pixels", 1)
    path = str(resolve_model(model).resolve())
    settings = dict(strength=strength, faces=faces, min_face=min_face, keep_unchanged=keep_unchanged,
                    quality=quality, max_pixels=max_pixels, ext=ext)
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


# ---------------------------------------------------------------------- Ray Client (ray://)


class ClientDriver:
    """The Ray Data part of a ``ray://`` run, in an actor on the cluster.

    Ray Data does not run in a Ray Client (its executor needs the driver's core worker, which a
    client has not: "'Worker' object has no attribute 'core_worker'"), so the dataset is built
    and iterated here, on the cluster, and ``smile`` takes its rows in input order with
    :meth:`take`.  The actor pool of :class:`SmileActor` is owned by this actor: killing it stops
    the whole run.  At most ``window`` rows wait here for ``smile`` (memory stays bounded)."""

    def __init__(self, rows: list, model_path: str, settings: dict, actors: int | None, per: int, window: int):
        import logging
        import queue
        import threading

        import ray
        from ray.data import DataContext

        ctx = DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.execution_options.preserve_order = True
        for name in ("ray.data", "ray"):
            logging.getLogger(name).setLevel(logging.ERROR)
        ds = ray.data.from_items(rows, override_num_blocks=-(-len(rows) // per))  # (one block per batch)
        out = _map(ray, ds, model_path, settings, actors, per)
        self._rows = queue.Queue(maxsize=max(1, window))
        threading.Thread(target=self._run, args=(out,), name="smile-ray-rows", daemon=True).start()

    def _run(self, out) -> None:
        try:
            for row in out.iter_rows():
                smiled = row.get("smiled")
                self._rows.put(("row", {"number": int(row["number"]), "report": str(row["report"]),
                                        "smiled": None if smiled is None else bytes(smiled)}))
            self._rows.put(("end", None))
        except BaseException as exc:  # noqa: BLE001 - said to smile, which fails the photos left
            from smilecore.errors import reason

            self._rows.put(("error", f"{type(exc).__name__}: {reason(exc)}"))

    def take(self, most: int = 16, wait: float = 5.0) -> list:
        """Up to ``most`` of the next rows: ``("row", dict)``, then ``("end", None)``, or
        ``("error", text)`` when the run failed; none when none came within ``wait`` seconds
        (``smile`` asks again: a call never holds the actor long)."""
        import queue

        got = []
        try:
            got.append(self._rows.get(timeout=wait))
            while len(got) < most and got[-1][0] == "row":
                got.append(self._rows.get_nowait())
        except queue.Empty:
            pass
        return got


def _remove_temps(prefix: str, rounds: int = 3) -> int:
    """Remove this run's private files (``prefix``) from this node's temporary folder, a few times
    a second apart (an actor stopped by a kill may still be going away)."""
    import glob

    removed = 0
    for i in range(rounds):
        if i:
            time.sleep(1.0)
        for leftover in glob.glob(os.path.join(tempfile.gettempdir(), glob.escape(prefix) + "*")):
            try:
                os.unlink(leftover)
                removed += 1
            except OSError:
                pass
    return removed


def _clean_nodes(ray, prefix: str, seconds: float = 10.0) -> None:
    """Remove this run's private files on every node of the cluster (actors stopped half-way
    through a photo leave them in their node's temporary folder); at most ``seconds``."""
    try:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        task = ray.remote(num_cpus=0, max_retries=0)(_remove_temps)
        refs = [task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)).remote(prefix)
                for node in ray.nodes() if node.get("Alive")]
        ray.wait(refs, num_returns=len(refs), timeout=seconds)
    except Exception:  # noqa: BLE001 - a cluster that is gone has nothing to clean
        pass


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
        tasks = [(n, job) for n, job in self.jobs.items() if not (job.problem or job.blocked or is_video_path(job.input))]
        self._ray = None
        self._driver = None  # (ray://: the actor that runs Ray Data on the cluster)
        self._pending: set = set()
        self._done: dict[int, rep.PhotoReport] = {}
        self._failed: str | None = None
        self._closed = False
        self._prefix = f"smile-ray-{os.urandom(6).hex()}-"  # this run's temporary files in the actors
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
        self._failed = None  # why the rows stopped coming (the photos left fail with it)
        self._client = is_client(ray)
        if rows:
            actors = min(actors, len(rows)) if actors else None  # (an actor for no photo only holds a model)
            per = batch_size_for(len(rows), pool_size(ray, actors))
            settings = {**self.settings, "ext": None, "tmp_prefix": self._prefix}
            if self._client:  # Ray Data runs on the cluster, in an actor (see ClientDriver)
                window = max(8, 2 * per * pool_size(ray, actors))
                driver = ray.remote(num_cpus=0, max_restarts=0, max_concurrency=1)(ClientDriver)
                self._driver = driver.remote(rows, str(self.model.path), settings, actors, per, window)
                self._iter = self._client_rows(self._driver, max(4, per))
            else:
                from ray.data import DataContext

                DataContext.get_current().execution_options.preserve_order = True
                ds = ray.data.from_items(rows, override_num_blocks=-(-len(rows) // per))  # (one block per batch)
                out = _map(ray, ds, str(self.model.path), settings, actors, per)
                self._iter = iter(out.iter_rows())

    def _client_rows(self, driver, most: int):
        """The rows of a ``ray://`` run, from its :class:`ClientDriver`, in input order."""
        while True:
            for kind, payload in self._ray.get(driver.take.remote(most)):
                if kind == "end":
                    return
                if kind == "error":
                    raise RuntimeError(payload)
                yield payload

    def take(self, number: int, bar=None) -> rep.PhotoReport:
        from .photo import process_photo as _process

        job = self.jobs[number]
        if number not in self._pending:  # a missing file: said as -j 1 says it
            r = _process(job, None, selection=None, number=number, debug_dir=None, **self.settings)
            if bar is not None:
                bar.update(1)
            return r
        while number not in self._done and self._failed is None:
            try:
                row = next(self._iter)
            except StopIteration:
                self._failed = "the Ray run ended without its result"
                break
            except Exception as exc:  # noqa: BLE001 - the cluster stopped or the run failed there
                self._failed = _why(exc)
                break
            self._arrived(row, bar)
        if number not in self._done:  # (the photos whose results had not come when the rows stopped)
            self._pending.discard(number)
            r = rep.PhotoReport(input=job.input, strength=self.settings.get("strength", 1.0))
            r.error = SmileError(f"{job.input}: not smiled: {self._failed}")
            if bar is not None:
                bar.update(1)
            return r
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
                    write_atomic(job.output, lambda f: f.write(bytes(data)), like=job.input)
                except WriteError as exc:
                    r.error, r.status, r.output = exc, rep.STATUS_FAILED, None
        self._pending.discard(number)
        self._done[number] = r
        if bar is not None:
            bar.update(1)

    def finished(self) -> list[rep.PhotoReport]:
        """Results written but not yet taken (after a stop), in input order; each given once."""
        return [self._done.pop(n) for n in sorted(self._done)]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._iter = None
        driver, self._driver = self._driver, None
        if driver is not None and not is_client(self._ray):
            # ray:// and the connection is lost: nothing to stop from here (the cluster ends the run
            # itself), and any call of Ray's would start joining the cluster directly, for ever
            return
        if driver is not None:  # ray://: stop the run on the cluster (its actors with it)
            try:
                self._ray.kill(driver, no_restart=True)
            except Exception:  # noqa: BLE001 - a cluster that is gone
                pass
            if self._pending and self._failed is None:  # stopped half-way: actors may leave private files
                _clean_nodes(self._ray, self._prefix)
        try:
            if self._ray is not None and self._ray.is_initialized():
                if self.address == "local":
                    stop_monitor(self._ray)
                self._ray.shutdown()  # (for 'local' this stops the throwaway cluster)
        except Exception:  # noqa: BLE001
            pass
        if self.address == "local":  # actors stopped half-way through a photo leave their copies here
            kill_leftovers()  # (and an interrupted start, agents)
            import glob

            for leftover in glob.glob(os.path.join(tempfile.gettempdir(), glob.escape(self._prefix) + "*")):
                try:
                    os.unlink(leftover)
                except OSError:
                    pass




def _why(exc: BaseException) -> str:
    """Why a run stopped, in a few words, for the photos it leaves unsmiled."""
    from smilecore.errors import reason

    names = {cls.__name__ for cls in type(exc).__mro__}
    if getattr(exc, "_actor_init_failed", False):  # e.g. smile-filter missing on the cluster's nodes
        import re

        found = re.findall(r"\b(\w+(?:Error|Exception): [^\n]*)", str(exc))
        return (f"the Ray run could not start on the cluster ({found[-1][:150] if found else type(exc).__name__}; "
                "is smile-filter installed on its nodes?)")
    if names & {"RayActorError", "ActorDiedError", "ActorUnavailableError", "WorkerCrashedError", "NodeDiedError",
                "OwnerDiedError", "ObjectLostError", "RaySystemError"}:
        return "the Ray cluster stopped, or the node running the run did"
    if isinstance(exc, ConnectionError) or "GetTimeoutError" in names:
        return f"the connection to the Ray cluster was lost ({reason(exc)[:120]})"
    text = reason(exc)
    return f"the Ray run failed ({text if type(exc).__name__ in text else f'{type(exc).__name__}: {text}'})"




# (exit statuses stay the documented ones)
assert set(_ERRORS) <= set(EXIT_CODES)
