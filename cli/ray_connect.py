"""Reaching a Ray cluster for ``smile --ray ADDRESS``: importing Ray, starting or joining the
cluster (``local``, ``auto``, ``ray://HOST:PORT`` with its token checks), and leaving it clean
(an interrupted start, the processes a ``local`` cluster leaves, Ray's own signal handlers and
C++ logging).  :mod:`smile_cli.ray_data` runs the photos once connected."""
from __future__ import annotations

import os
import signal
import time
from types import ModuleType

from smilecore.errors import UsageError

from .interrupt import Terminated

#: Environment variable marking the processes of the ``--ray local`` cluster this run starts.
OWNER_VAR = "SMILE_RAY_OWNER"
#: How many times ``ray.init("ray://...")`` is tried when the client server fails to start this client's server.
CLIENT_START_TRIES = 3
#: How to get Ray: the ``[ray]`` extra's own requirement, which works with or without a checkout.
INSTALL_HINT = 'pip install "ray[data,client]>=2.51" (the [ray] extra)'


def import_ray() -> ModuleType:
    """``ray`` and ``ray.data``, or a :class:`UsageError` (exit 2) saying how to install them."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UsageError(f"--ray needs Ray Data, which is not installed: {INSTALL_HINT}") from None
    return ray


def connect(address: str) -> ModuleType:
    """Join (or, for ``local``, start) a Ray cluster quietly; returns the ``ray`` module."""
    import logging

    ray = import_ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")  # (the C++ core's notes would land on stderr)
    if not ray.is_initialized():
        kw = dict(log_to_driver=False, logging_level=logging.ERROR, configure_logging=True)
        if address == "local":
            kw["include_dashboard"] = False
        if address != "local":
            _use_named_token()
            target = _client_address(address)
            if target is not None:
                _check_client(address, target)
            else:
                _check_reachable(address)
        handlers = _signal_handlers()
        if address == "local":  # (the cluster's processes inherit it: see _stop_half_started)
            os.environ[OWNER_VAR] = f"{os.getpid()}-{time.time_ns()}"
        try:
            for attempt in range(CLIENT_START_TRIES):
                try:
                    with _quiet_stderr():  # Ray's C++ core says hello on file descriptor 2
                        ray.init(address=address, **kw)
                    break
                except ConnectionError as exc:
                    # Ray's client server starts a server for each client, and sometimes that start
                    # fails (ray-project/ray#63202: a fork while gRPC runs threads): a try more
                    if "Initialization failure from server" not in str(exc) or attempt == CLIENT_START_TRIES - 1:
                        raise
                    try:
                        ray.shutdown()
                    except Exception:  # noqa: BLE001
                        pass
                    time.sleep(1.0)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            text = " ".join(str(exc).split())
            if "Initialization failure from server" in text:  # (its Python traceback says nothing more)
                raise UsageError(f"--ray {address}: the cluster's Ray Client server could not start a server for "
                                 f"this client ({CLIENT_START_TRIES} tries; its log: ray_client_server.err on the "
                                 "head; starting the head with GRPC_ENABLE_FORK_SUPPORT=0 avoids a known cause)") from None
            raise UsageError(f"--ray {address}: cannot reach the Ray cluster ({text[:200]})") from None
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
    # (Ray Client logs a lost connection as an error on stderr; smile says it for each photo left)
    logging.getLogger("ray.util.client").setLevel(logging.CRITICAL)
    try:  # a Ray call after the connection is lost must fail, not join (or start) a cluster of its own
        from ray._private import auto_init_hook

        auto_init_hook.enable_auto_connect = False
    except Exception:  # noqa: BLE001 - Ray's private parts changed
        pass
    return ray


def _stop_half_started(ray, address: str) -> None:
    """Stop what an interrupted ``ray.init`` started.  For ``local``, ``ray.shutdown`` does not stop
    every process of a cluster interrupted while it starts (its dashboard and runtime-env agents
    then outlive smile, for minutes): see :func:`kill_leftovers`."""
    try:
        if address == "local":
            stop_monitor(ray)
        ray.shutdown()
    except Exception:  # noqa: BLE001 - stopping anyway
        pass
    if address == "local":
        kill_leftovers()


def kill_leftovers() -> None:
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
    _check_gcs(address, found)


def _check_gcs(address: str, found: str) -> None:
    """A :class:`UsageError` when the cluster's GCS at ``found`` asks for a token this process does not
    send, or refuses the one it sends, or something listening there does not answer as a GCS.
    ``ray.init`` would wait about 20 s in each case and then say only "Failed to connect to Ray cluster".
    (Ray's GCS client is private: when it cannot be used, nothing more is checked.)"""
    try:
        from ray._raylet import GcsClient
        from ray.exceptions import AuthenticationError, RpcError
    except Exception:  # noqa: BLE001
        return
    try:
        with _quiet_stderr():  # (its C++ side logs the refusal on file descriptor 2)
            GcsClient(address=found)
    except AuthenticationError:
        raise _token_refused(address) from None
    except RpcError as exc:
        if "timed out" in str(exc).lower():
            raise UsageError(f"--ray {address}: something listens at {found} but does not answer as a Ray "
                             "cluster (its address is the head's --port, 6379 unless chosen)") from None
    except Exception:  # noqa: BLE001 - Ray's private parts changed: ray.init says what it says
        return


def _client_address(address: str) -> str | None:
    """The Ray Client address (``ray://HOST:PORT``) that ``ray.init(address)`` uses, or None when it
    joins the cluster directly (``auto``, ``HOST:PORT``).  ``auto`` follows ``RAY_ADDRESS``, as Ray does."""
    if address == "auto":
        address = os.environ.get("RAY_ADDRESS") or address
    return address if "://" in address else None


def _use_named_token() -> None:
    """Send the token named in ``RAY_AUTH_TOKEN`` or ``RAY_AUTH_TOKEN_PATH`` to the cluster.

    Ray (2.51+) sends a token to a cluster given by its address only when ``RAY_AUTH_MODE=token``
    is set; without it a Ray Client waits 30 s for a cluster that refuses it, then says "ray client
    connection timeout".  A token named explicitly is what the person wants sent, so the mode is
    set for them (``RAY_AUTH_MODE=disabled`` still wins; ``~/.ray/auth_token`` alone is sent only
    with ``RAY_AUTH_MODE=token``, as Ray does: it may belong to another cluster)."""
    if os.environ.get("RAY_AUTH_MODE") is not None:
        return
    if not (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")):
        return
    os.environ["RAY_AUTH_MODE"] = "token"
    try:  # (Ray's configuration, read once, is read again: it is what its gRPC channels ask)
        from ray._raylet import Config

        Config.initialize("")
    except Exception:  # noqa: BLE001 - an older Ray without token authentication
        pass


def _token_source() -> str:
    """Where Ray takes the token it sends from (its own order)."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    if os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return f"RAY_AUTH_TOKEN_PATH ({os.environ['RAY_AUTH_TOKEN_PATH']})"
    return "~/.ray/auth_token"


def _check_client(address: str, target: str, seconds: float = 10.0) -> None:
    """A :class:`UsageError` (one line, within about ``seconds``) when the Ray Client server at
    ``target`` cannot be used: nothing listens, it does not answer as a Ray Client server, or it
    asks for a token this process does not send or refuses the one it sends.  ``ray.init`` would
    retry for 30 s in each case and then say only "ray client connection timeout".
    (Ray's client protocol is private: when it cannot be used, only the port is checked.)"""
    import socket

    hostport = target.split("://", 1)[1].split("/", 1)[0] or "127.0.0.1"
    host, _, port = hostport.rpartition(":") if hostport.rpartition(":")[2].isdigit() else (hostport, ":", "10001")
    host = host.strip("[]") or "127.0.0.1"
    where = f"{host}:{port}"
    head = f"--ray {address}: cannot reach the Ray cluster at {where}"
    if _token_path_unreadable():
        path = os.environ["RAY_AUTH_TOKEN_PATH"]
        raise UsageError(f"--ray {address}: RAY_AUTH_TOKEN_PATH names {path}, which cannot be read or is empty: "
                         "put the cluster's token there (`ray get-auth-token` on its head prints it)")
    try:
        socket.create_connection((host, int(port)), timeout=seconds / 2).close()
    except OSError as exc:
        raise UsageError(f"{head} ({exc.strerror or exc}); is its head running with the client server "
                         f"(ray start --head --ray-client-server-port={port})?") from None
    try:
        import grpc

        from ray._private.grpc_utils import init_grpc_channel
        from ray.core.generated import ray_client_pb2, ray_client_pb2_grpc
    except Exception:  # noqa: BLE001
        return
    channel = None
    try:
        # (with the token, as Ray's client sends it)
        channel = init_grpc_channel(f"[{host}]:{port}" if ":" in host else where, asynchronous=False)
        grpc.channel_ready_future(channel).result(timeout=seconds / 2)
        ping = ray_client_pb2.ClusterInfoRequest(type=ray_client_pb2.ClusterInfoType.PING)
        ray_client_pb2_grpc.RayletDriverStub(channel).ClusterInfo(ping, timeout=seconds / 2)
    except grpc.FutureTimeoutError:
        raise UsageError(f"{head}: something listens there but does not answer as a Ray Client server "
                         "(its port is the head's --ray-client-server-port, 10001 unless chosen)") from None
    except grpc.RpcError as exc:
        code = exc.code() if callable(getattr(exc, "code", None)) else None
        if code == grpc.StatusCode.UNAUTHENTICATED:
            raise _token_refused(address) from None
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNIMPLEMENTED):
            raise UsageError(f"{head}: it does not answer as a Ray Client server ({code.name.lower()}; its port is "
                             "the head's --ray-client-server-port, 10001 unless chosen)") from None
    except UsageError:
        raise
    except Exception:  # noqa: BLE001 - Ray's private parts changed: ray.init says what it says
        return
    finally:
        if channel is not None:
            try:
                channel.close()
            except Exception:  # noqa: BLE001
                pass


def _token_refused(address: str) -> UsageError:
    """The error for a cluster that refused this process: no token sent, or not the cluster's."""
    if _token_sent():
        return UsageError(f"--ray {address}: the cluster refused the token from {_token_source()}: it is "
                          "not this cluster's (`ray get-auth-token` on its head prints the right one)")
    return UsageError(f"--ray {address}: the cluster asks for its token: set RAY_AUTH_TOKEN_PATH to a file "
                      "holding it (`ray get-auth-token` on its head prints it)")


def _token_path_unreadable() -> bool:
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if not path or os.environ.get("RAY_AUTH_TOKEN") or (os.environ.get("RAY_AUTH_MODE") or "").lower() != "token":
        return False
    try:
        with open(os.path.expanduser(path), "rb") as f:
            return not f.read().strip()
    except OSError:
        return True


def _token_sent() -> bool:
    """Whether Ray's gRPC channels carry a token (token mode, and a token found)."""
    try:
        from ray._private.authentication.authentication_utils import is_token_auth_enabled
        from ray._raylet import AuthenticationTokenLoader

        return bool(is_token_auth_enabled() and AuthenticationTokenLoader.instance().has_token())
    except Exception:  # noqa: BLE001
        return (os.environ.get("RAY_AUTH_MODE") or "").lower() == "token"


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

def is_client(ray: ModuleType) -> bool:
    """Whether this process reaches the cluster through Ray Client (``ray://``)."""
    try:
        return bool(ray.util.client.ray.is_connected())
    except Exception:  # noqa: BLE001
        return False
def stop_monitor(ray: ModuleType) -> None:
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
