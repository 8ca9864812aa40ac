"""``smile PHOTO... -j N``: N photos at a time, each in a worker process of its own.

How it works:

* Workers are fresh Python processes (multiprocessing's ``spawn``: nothing is forked from a
  process that already runs ONNX Runtime's threads).  Each loads the model once, with one
  inference thread (``SMILE_THREADS=1`` for the face detector and the smile network, OpenCV on
  one thread), and smiles photos with the very function ``-j 1`` uses
  (:func:`smile_cli.photo.process_photo`): reading, editing and the atomic write all happen in the
  worker, so the results are the same bytes.
* A dispatcher thread in the main process hands each worker one photo at a time (a file name,
  never pixels): at most N photos are decoded at any moment, whatever the speed of the disk or
  of the reader of the report.  Results (small reports) come back in any order and are given
  to the caller in input order (:meth:`PhotoPool.take`); the progress bar counts photos as
  they finish.
* Stopping: the workers never see Ctrl-C or SIGHUP themselves (the signals are blocked in
  them); the main process turns Ctrl-C / SIGTERM / SIGHUP into an exception, and
  :meth:`PhotoPool.close` then sends SIGTERM to every worker, which stops its photo as
  ``-j 1`` would (the temporary file is removed).  A worker that has not stopped after
  :data:`GRACE_SECONDS` is killed and its temporary file removed by the main process.
* A worker that dies (a crash, the OOM killer) fails only the photo it was working on (an
  internal error, exit 1) and is replaced.

Videos stay in the main process, one after another (cli/run.py), while workers go on with
the photos.
"""
from __future__ import annotations

import collections
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from smilecore.errors import SmileError

from . import report as rep

#: Seconds a worker gets to stop after SIGTERM before it is killed.
GRACE_SECONDS = 5.0
#: Seconds workers get to leave after the last photo.
_LEAVE_SECONDS = 10.0
#: How often the dispatcher looks at the stop flag (seconds).
_TICK = 0.2
#: Signals the workers never receive from the terminal (the main process stops them).
_BLOCKED_IN_WORKERS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGHUP") if hasattr(signal, n))


def open_pool(jobs_n: int | None, jobs: list, model, settings: dict, ray: str | None = None,
              ray_actors: int | None = None) -> "PhotoPool | None":
    """The started pool for ``smile PHOTO... -j N``, or None when photos go one after another in
    this process (``-j 1``, a single photo, a single core).

    The model is resolved here (a missing file or an unknown name fails before any worker
    starts) and loaded by the workers; ``pool.model`` describes it (the model itself when videos,
    which run in this process, need it).  The strength is checked against the model's range
    before the first photo is handed out.  The pool is closed with the click context (an
    error, Ctrl-C, SIGTERM) or by :meth:`PhotoPool.close`."""
    from .video import check_schedule, is_video_path

    if ray:
        return _open_ray(ray, ray_actors, jobs, model, settings)
    n = default_jobs() if jobs_n is None else int(jobs_n)
    tasks = [(number, job) for number, job in enumerate(jobs, 1) if not is_video_path(job.input)]
    if n <= 1 or len(tasks) <= 1 or all(job.problem is not None for _, job in tasks):
        return None
    from smilecore.registry import resolve_model

    path = str(resolve_model(model).resolve())  # ModelError -> exit 6, before any worker starts
    pool = PhotoPool(tasks, n, {**settings, "model_path": path})
    import click

    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.call_on_close(pool.close)
    try:
        pool.model = pool.start()
        if any(j.problem is None and is_video_path(j.input) for j in jobs):
            import smilecore

            pool.model = smilecore.load_model(model)
        check_schedule(settings.get("strength", 1.0), jobs, pool.model)
    except BaseException:
        pool.close()
        raise
    pool.go()
    return pool


def _open_ray(address: str, actors: int | None, jobs: list, model, settings: dict):
    """``--ray ADDRESS``: the photos through Ray Data (cli/ray_data.py)."""
    import click

    from smilecore.errors import UsageError

    from .ray_data import RayBatch, import_ray

    import_ray()  # not installed: exit 2 with the command that installs it
    if all(j.problem is not None for j in jobs):
        return None  # (say which files are missing, as without --ray)
    if settings.get("debug_dir") is not None:
        raise UsageError("--debug is not available with --ray (run those photos without --ray)")
    batch = RayBatch(address, actors, jobs, model, {k: v for k, v in settings.items() if k != "debug_dir"})
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.call_on_close(batch.close)
    return batch


def default_jobs() -> int:
    """The number of CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@dataclass
class ModelInfo:
    """What the main process needs of the model the workers load (it loads none itself)."""

    name: str
    version: str
    license: str
    path: str
    strength_range: tuple[float, float]

    def check_strength(self, strength: float, what: str = "strength") -> None:
        from smilecore.model import SmileModel

        SmileModel.check_strength(self, strength, what)  # same rule, same message


@dataclass
class _Worker:
    proc: object
    conn: object
    ready: bool = False
    task: tuple | None = None  #: (number, Job) being smiled
    stopping: bool = False


@dataclass
class _State:
    results: dict = field(default_factory=dict)
    completed: int = 0
    failure: BaseException | None = None
    model: ModelInfo | None = None
    finished: bool = False


class PhotoPool:
    """Worker processes smiling ``tasks`` (``(number, Job)`` pairs, in input order).

    ``settings``: the keyword arguments of :func:`smile_cli.photo.process_photo` except ``job``,
    ``model`` and ``number`` (``selection`` is always None), plus ``model_path``."""

    def __init__(self, tasks: list[tuple[int, object]], workers: int, settings: dict):
        self.size = max(1, min(int(workers), len(tasks)))
        self.settings = dict(settings)
        self.model = None  #: set by open_pool: a ModelInfo (or the model itself)
        self._queue = collections.deque(tasks)
        self._total = len(tasks)
        self._cond = threading.Condition()
        self._state = _State()
        self._stop = False
        self._go = False  # photos are handed out only once the caller has checked the options
        self._shown = 0  # photos counted on the progress bar
        self._workers: list[_Worker] = []
        self._thread = threading.Thread(target=self._serve, name="smile-pool", daemon=False)

    # ------------------------------------------------------------------ main thread

    def start(self) -> ModelInfo:
        """Start the workers; return the model's description once one worker has loaded it.
        Raises the worker's :class:`ModelError` (or another :class:`SmileError`) if none can."""
        self._thread.start()
        with self._cond:
            while self._state.model is None and self._state.failure is None and not self._state.finished:
                self._cond.wait(_TICK)
        if self._state.model is None:
            self.close()
            raise self._state.failure or SmileError("internal error: the worker processes could not start (please report it)")
        return self._state.model

    def go(self) -> None:
        """Start handing out photos (after :meth:`start` and the caller's last checks)."""
        with self._cond:
            self._go = True
            self._cond.notify_all()

    def take(self, number: int, bar=None) -> rep.PhotoReport:
        """The report of photo ``number`` (waiting for it); the ``bar`` counts every finished photo."""
        while True:
            with self._cond:
                done = self._state.completed
                result = self._state.results.pop(number, None)
                failure = self._state.failure
                if result is None and failure is None and done == self._shown:
                    if self._state.finished:
                        failure = SmileError("internal error: the worker processes stopped early (please report it)")
                    else:
                        self._cond.wait(_TICK)
                        continue
            if bar is not None and done > self._shown:
                bar.update(done - self._shown)
            self._shown = done
            if result is not None:
                return result
            if failure is not None:
                raise failure

    def finished(self) -> list[rep.PhotoReport]:
        """The reports of the photos finished but not yet taken (after a stop: those done out of input
        order), in input order; each is given once."""
        with self._cond:
            done = [self._state.results.pop(n) for n in sorted(self._state.results)]
        return done

    def close(self) -> None:
        """Stop the workers: they leave after their last photo, or, when photos remain (an
        error, Ctrl-C, SIGTERM), they are stopped by SIGTERM and their temporary files removed."""
        if not self._thread.is_alive() and not self._thread.ident:
            return
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ dispatcher thread

    def _serve(self) -> None:
        if _BLOCKED_IN_WORKERS and hasattr(signal, "pthread_sigmask"):
            # multiprocessing starts its resource tracker on the first spawn, and unblocks SIGINT in the
            # calling thread once it has: started first, it leaves the mask below alone
            from multiprocessing import resource_tracker

            resource_tracker.ensure_running()
            # inherited by the workers started from this thread: Ctrl-C in a terminal reaches the
            # main process only, which then stops the workers (SIGTERM), so each stops cleanly once
            signal.pthread_sigmask(signal.SIG_BLOCK, _BLOCKED_IN_WORKERS)
        graceful = False
        try:
            for _ in range(self.size):
                self._spawn()
            graceful = self._loop()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            with self._cond:
                if self._state.failure is None:
                    self._state.failure = exc if isinstance(exc, SmileError) else SmileError(
                        f"internal error in the worker pool: {type(exc).__name__}: {exc} (please report it)")
        finally:
            self._shutdown(graceful)
            with self._cond:
                self._state.finished = True
                self._cond.notify_all()

    def _loop(self) -> bool:
        """Feed and read the workers until every photo is done (True) or a stop is asked (False)."""
        from multiprocessing.connection import wait

        while True:
            with self._cond:
                if self._stop or self._state.failure is not None:
                    return False
                if self._state.completed >= self._total:
                    return True
            self._feed()
            if not self._workers:
                raise SmileError("internal error: no worker process is left (please report it)")
            handles = [w.conn for w in self._workers] + [w.proc.sentinel for w in self._workers]
            ready = set(wait(handles, timeout=_TICK))
            for w in list(self._workers):
                if w.conn in ready or w.proc.sentinel in ready:
                    self._receive(w)

    def _spawn(self) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe(duplex=True)
        proc = ctx.Process(target=worker_main, args=(child, self.settings), name="smile-worker", daemon=True)
        proc.start()
        child.close()
        self._workers.append(_Worker(proc=proc, conn=parent))

    def _feed(self) -> None:
        if not self._go:
            return
        for w in self._workers:
            if w.ready and w.task is None and self._queue:
                task = self._queue.popleft()
                try:
                    w.conn.send(task)
                except (OSError, ValueError):
                    self._queue.appendleft(task)  # never started: another worker takes it
                    continue
                w.task = task

    def _receive(self, w: _Worker) -> None:
        self._drain(w)
        if not w.proc.is_alive():
            self._lost(w)

    def _drain(self, w: _Worker) -> None:
        """Read what ``w`` has sent and not yet been read (its pipe may be closed)."""
        try:
            while w.conn.poll():
                self._handle(w, w.conn.recv())
        except (EOFError, OSError, ValueError):
            pass

    def _handle(self, w: _Worker, msg: tuple) -> None:
        kind = msg[0]
        with self._cond:
            if kind == "ready":
                w.ready = True
                if self._state.model is None:
                    self._state.model = msg[1]
            elif kind == "done":
                number, report = msg[1], msg[2]
                w.task = None
                self._state.results[number] = report
                self._state.completed += 1
            elif kind == "error":  # the model could not be loaded: the same for every worker
                if self._state.failure is None:
                    self._state.failure = msg[1]
            self._cond.notify_all()

    def _lost(self, w: _Worker) -> None:
        """A worker died: its photo fails (exit 1), a new worker takes the others."""
        w.proc.join()
        self._workers.remove(w)
        try:
            w.conn.close()
        except OSError:
            pass
        how = _how_it_ended(w.proc.exitcode)
        if w.task is not None:
            number, job = w.task
            remove_orphan_temps(job.output)
            r = rep.PhotoReport(input=job.input, strength=self.settings.get("strength", 1.0))
            r.error = SmileError(f"{job.input}: internal error: the worker process smiling it stopped ({how}) (please report it)")
            with self._cond:
                self._state.results[number] = r
                self._state.completed += 1
                self._cond.notify_all()
        if not w.ready:
            if not any(o.ready or o.proc.is_alive() for o in self._workers):
                raise SmileError(f"internal error: the worker processes could not start ({how}) (please report it)")
            return
        if self._queue:
            self._spawn()

    def _shutdown(self, graceful: bool) -> None:
        """Let idle workers leave; stop busy ones (SIGTERM, then SIGKILL) and remove what they leave. A photo
        a worker finished on the way (its message not read yet) is counted as finished."""
        for w in self._workers:
            self._drain(w)
        for w in self._workers:
            if graceful and w.task is None:
                try:
                    w.conn.send(None)
                except (OSError, ValueError):
                    pass
            elif w.proc.is_alive():
                w.stopping = True
                w.proc.terminate()  # SIGTERM: the worker stops like -j 1 on Ctrl-C
        deadline = time.monotonic() + (_LEAVE_SECONDS if graceful else GRACE_SECONDS)
        for w in self._workers:
            w.proc.join(max(0.0, deadline - time.monotonic()))
        for w in self._workers:
            self._drain(w)  # (a photo finished before the SIGTERM reached its worker)
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join()
                if w.task is not None:
                    remove_orphan_temps(w.task[1].output)
            try:
                w.conn.close()
            except OSError:
                pass
        self._workers.clear()


def _how_it_ended(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit status {exitcode}"


def remove_orphan_temps(target) -> list[Path]:
    """Remove the temporary files a killed writer of ``target`` left (Smile's naming, no live
    writer holding their lock); other runs' files are never touched."""
    if target is None:
        return []
    from smilecore import atomic

    t = Path(target)
    try:
        if t.is_symlink():
            t = Path(os.path.realpath(t))
    except OSError:
        return []
    folder = t.parent if str(t.parent) else Path(".")
    prefix = "." + atomic._short_name(t.name) + "."
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        if not (e.name.startswith(prefix) and e.name.endswith(atomic.TEMP_SUFFIX)):
            continue
        middle = e.name[len(prefix):-len(atomic.TEMP_SUFFIX)]
        if len(middle) != 8 or not atomic._TEMP_NAME.match(e.name):
            continue
        try:
            if e.is_file(follow_symlinks=False) and not atomic._locked_by_writer(e.path):
                os.unlink(e.path)
                removed.append(Path(e.path))
        except OSError:
            continue
    return removed


# ---------------------------------------------------------------------- the worker process


class _Stop(KeyboardInterrupt):
    """SIGTERM from the main process: stop the photo like Ctrl-C (temporary file removed)."""


#: Set in a worker once the main process asked it to stop.
_stop_asked = {"yes": False}


def _raise_stop(signum, frame):
    _stop_asked["yes"] = True
    # one stop is enough: a second SIGTERM must not break into the clean-up the first one started
    # (removing the temporary file, leaving the loop), nor print a traceback as the process ends
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise _Stop(signum)


def worker_main(conn, settings: dict) -> None:
    """A worker: load the model, then smile the photos the main process sends until ``None``."""
    try:
        signal.signal(signal.SIGTERM, _raise_stop)
        os.environ["SMILE_THREADS"] = "1"  # the detector's and the network's sessions: one thread each
        settings = dict(settings)
        model_path = settings.pop("model_path")
        try:
            import cv2

            cv2.setNumThreads(1)
        except Exception:  # noqa: BLE001 - only a speed matter
            pass
        from smilecore.model import SmileModel

        from .photo import process_photo as _process

        try:
            model = SmileModel(model_path, threads=1)
        except SmileError as exc:
            conn.send(("error", exc))
            return
        conn.send(("ready", ModelInfo(name=model.name, version=model.version, license=model.license,
                                      path=str(model.path), strength_range=tuple(model.strength_range))))
        while True:
            task = conn.recv()
            if task is None:
                return
            number, job = task
            report = _process(job, model, selection=None, number=number, **settings)
            conn.send(("done", number, report))
    except (KeyboardInterrupt, EOFError, BrokenPipeError):
        return  # stopped by the main process, or the main process is gone
    except Exception:
        if _stop_asked["yes"]:
            return  # the stop arrived inside a library that turned it into its own error (onnxruntime's import does)
        raise
    finally:
        # done: a SIGTERM that arrives while the process ends has nothing left to stop
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
