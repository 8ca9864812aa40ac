"""A model's bytes over HTTP into its ``.part`` file in the cache: resumed with a Range request, each problem
said as one that another try may not have (:class:`Retry`) or will have too (:class:`Stop`).
:func:`smilecore.registry.fetch_model` takes turns, retries and checks what arrives."""
from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from typing import Any

from .errors import ModelError, reason

#: Seconds a download waits for the server (connecting, or between two pieces of data).
TIMEOUT = 60


class Retry(Exception):
    """A download problem that another try may not have (a dropped connection, a 5xx answer)."""


class Stop(Exception):
    """A download problem that another try will have too (404, a web page, the wrong size)."""


def cache_error(folder: Path, exc: OSError) -> ModelError:
    """The cache cannot be written: a one-line message that says what to do."""
    why = exc.strerror or reason(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        hint = "free some space there, or set SMILE_CACHE_DIR to a folder on another disk"
    else:
        hint = "set SMILE_CACHE_DIR to a folder you can write to"
    return ModelError(f"cannot write into the model cache {folder} ({why}): {hint}")


def content_range_start(value: str | None) -> int | None:
    """``N`` of a ``Content-Range: bytes N-M/T`` header, or None."""
    if not value or not value.strip().lower().startswith("bytes "):
        return None
    try:
        return int(value.strip()[6:].split("-", 1)[0])
    except ValueError:
        return None


def download(info: Any, part: Path, progress: bool) -> None:
    """Bring ``part`` (of ``info``, a :class:`smilecore.registry.ModelInfo`) to the whole file, resuming what it holds with an HTTP Range request.

    Raises :class:`Retry` (what was received is kept) or :class:`Stop`; Ctrl-C keeps it too."""
    import http.client
    import urllib.error
    import urllib.request

    expected = info.size if info.size > 0 else None
    have = part.stat().st_size if part.is_file() else 0
    if expected is not None and have > expected:  # not this model's beginning
        part.unlink()
        have = 0
    if expected is not None and have == expected:
        return  # complete: the caller checks it
    headers = {"Accept-Encoding": "identity", "User-Agent": "smile-filter"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(info.url, headers=headers), timeout=TIMEOUT)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and have:  # the range cannot be served: start again from scratch
            part.unlink(missing_ok=True)
            raise Retry("the server could not resume the download") from None
        what = f"the server answered HTTP {exc.code} {' '.join(str(exc.reason).split())}"
        if 300 <= exc.code < 400:  # (urllib follows redirects: one it gives up on is a loop, or one with no address)
            what = f"the server's redirects (HTTP {exc.code}) lead nowhere or in a loop: check the download address"
        if exc.code in (408, 425, 429) or exc.code >= 500:
            raise Retry(what) from None
        raise Stop(what) from None
    except ValueError as exc:  # not a URL urllib can open
        raise Stop(f"bad download address ({reason(exc)})") from None
    except (OSError, http.client.HTTPException) as exc:
        exc_reason = getattr(exc, "reason", None)
        raise Retry(f"cannot reach the server ({reason(exc_reason if exc_reason is not None else exc)})") from None
    with resp:
        kind = (resp.headers.get("Content-Type") or "").lower()
        if "text/html" in kind:
            raise Stop("the server sent a web page (text/html) instead of the model: an error or login page? "
                        "open the address in a browser to see it")
        status = getattr(resp, "status", 200)
        if have and status == 206:
            if content_range_start(resp.headers.get("Content-Range")) != have:
                part.unlink(missing_ok=True)
                raise Retry("the server resumed the download at the wrong place")
        elif status == 200:
            have = 0  # the server sends the whole file (it ignored the range): start over
        else:
            raise Retry(f"the server answered HTTP {status}")
        length = resp.headers.get("Content-Length")
        try:
            total = have + int(length) if length is not None else expected
        except ValueError:
            total = expected
        if expected is not None and total is not None and total != expected:
            if have:
                part.unlink(missing_ok=True)
            raise Stop(f"the server offers {total} bytes, the registry says the model has {expected}: "
                        "this address does not serve this model")
        try:
            f = open(part, "ab" if have else "wb")
        except OSError as exc:
            raise cache_error(part.parent, exc) from None
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=info.name, file=sys.stderr)
        try:
            with f:
                while True:
                    try:
                        chunk = resp.read(1 << 16)
                    except (OSError, http.client.HTTPException) as exc:
                        raise Retry(f"the connection broke after {have} of {total or '?'} bytes ({reason(exc)})") from None
                    if not chunk:
                        break
                    if expected is not None and have + len(chunk) > expected:
                        raise Stop(f"the server sends more than the model's {expected} bytes: "
                                    "this address does not serve this model")
                    try:
                        f.write(chunk)
                    except OSError as exc:  # a full or failing disk: keep no half file there
                        raise Stop(cache_error(part.parent, exc)) from None
                    have += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
                try:
                    f.flush()
                    os.fsync(f.fileno())
                except OSError as exc:
                    raise Stop(cache_error(part.parent, exc)) from None
        except Stop:
            part.unlink(missing_ok=True)  # what it holds is not the model
            raise
        finally:
            if bar is not None:
                bar.close()
    if total is not None and have < total:
        raise Retry(f"the connection closed after {have} of {total} bytes")
