"""What a ``smile PHOTO...`` run tells people (one line per photo) and scripts (``--json``).

The JSON document (schema version 1) printed by ``--json``::

    {
      "schema": 1,
      "version": "0.1.0",                       # smile-filter version
      "model": {"name": ..., "version": ..., "license": ..., "path": ...} | null,
      "strength": 1.0,
      "photos": [
        {
          "input": "a.jpg",
          "output": "a.smile.jpg" | null,        # null when nothing was written
          "status": "ok" | "unchanged" | "failed",
          "faces_found": 2, "faces_edited": 1,
          "faces": [{"index": 0, "box": [x0, y0, x1, y1], "score": 1.7,
                     "edited": true, "reason": null}],
          "strength": 1.0,
          "size": [width, height] | null,
          "seconds": 0.41,                       # load + edit + save
          "timings": {"detect": 0.1, ...},       # engine stages, seconds
          "notes": ["..."],                      # lossy conversions etc.
          "error": null | {"code": "no_face", "exit_code": 3, "message": "..."}
        }
      ],
      "summary": {"total": 1, "ok": 1, "unchanged": 0, "failed": 0, "exit_code": 0}
    }
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from smilecore.errors import SmileError
from smilecore.strength import ALREADY_SMILING, MOUTH_HIDDEN, TURNED_AWAY, WIDER
from smilecore.video_streams import is_video_path

SCHEMA_VERSION = 1

STATUS_OK = "ok"
STATUS_UNCHANGED = "unchanged"
STATUS_FAILED = "failed"


@dataclass
class PhotoReport:
    """The outcome for one photo."""

    input: Path
    output: Path | None = None
    status: str = STATUS_FAILED
    faces: list[dict] = field(default_factory=list)
    strength: float = 1.0
    size: tuple[int, int] | None = None
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: SmileError | None = None
    reason: str | None = None  #: why a photo was left unchanged (also in ``notes``)

    @property
    def exit_code(self) -> int:
        """0 for success, else the error's exit status."""
        return 0 if self.error is None else self.error.exit_code

    def to_dict(self) -> dict:
        """The photo's entry in the ``--json`` document."""
        return {
            "input": str(self.input),
            "output": str(self.output) if self.output is not None else None,
            "status": self.status,
            "faces_found": len(self.faces),
            "faces_edited": sum(1 for f in self.faces if f.get("edited")),
            "faces": self.faces,
            "strength": self.strength,
            "size": list(self.size) if self.size else None,
            "seconds": round(self.seconds, 4),
            "timings": {k: round(float(v), 4) for k, v in self.timings.items()},
            "notes": list(self.notes),
            "error": None if self.error is None else {"code": self.error.code, "exit_code": self.error.exit_code, "message": str(self.error)},
        }

    def fail(self, exc: BaseException) -> None:
        """Record a failure: a SmileError as it is, any other exception as a bug (see :func:`bug_error`); an
        exception that a Ctrl-C, SIGTERM or SIGHUP caused stops the run instead (that stop is raised)."""
        from .interrupt import stop_behind

        stop = stop_behind(exc)
        if stop is not None:
            raise stop
        self.error = exc if isinstance(exc, SmileError) else bug_error(self.input, exc)
        self.status = STATUS_FAILED
        found = getattr(exc, "faces", None)  # (faces the error knows of: a face index that does not exist, say)
        if found and not self.faces:
            self.faces = [f.to_dict() if hasattr(f, "to_dict") else dict(f) for f in found]

    def line(self) -> str:
        """One human-readable line."""
        if self.status == STATUS_FAILED:
            return f"smile: error: {self.error}"
        if self.status == STATUS_UNCHANGED:
            what = "copied unchanged" if self.output and self.output != self.input else "left unchanged"
            why = f" ({self.reason})" if self.reason else ""
            where = f" -> {self.output}" if self.output and self.output != self.input else ""
            return f"{self.input}{where}: {what}{why}"
        return f"{self.input} -> {self.output}: {self.faces_phrase()} ({self.seconds:.2f} s)"

    def faces_phrase(self) -> str:
        """"N of M faces smiled" ("smiled less" at a negative strength), and how many were left as they are
        because they already smile as much."""
        edited = sum(1 for f in self.faces if f.get("edited"))
        found = len(self.faces)
        less = isinstance(self.strength, (int, float)) and self.strength < 0
        faces = f"{edited} of {found} face{'s' if found != 1 else ''} smiled{' less' if less else ''}"
        smiling = sum(1 for f in self.faces if (f.get("reason") or "").startswith(ALREADY_SMILING))
        if smiling:
            wider = sum(1 for f in self.faces if (f.get("reason") or "").startswith(ALREADY_SMILING) and WIDER in f["reason"])
            if wider == smiling:
                why = f"a higher --strength widens {'their smiles' if smiling > 1 else 'the smile'}"
            elif wider == 0:
                why = "as broad as Smile makes any smile"
            else:
                why = f"a higher --strength widens {wider} of them"
            faces += f", {smiling} already smiling as much ({why})"
        away = sum(1 for f in self.faces if f.get("reason") == TURNED_AWAY)
        if away:
            faces += f", {away} turned away from the camera (left as {'they are' if away > 1 else 'it is'})"
        hidden = sum(1 for f in self.faces if f.get("reason") == MOUTH_HIDDEN)
        if hidden:
            faces += f", {hidden} with the mouth hidden (left as {'they are' if hidden > 1 else 'it is'})"
        return faces


def bug_error(path, exc: BaseException) -> SmileError:
    """The error to report for an unexpected exception while handling ``path`` (a bug: one line that asks
    for a report; the traceback is printed only with ``SMILE_DEBUG``), so one file's bug never loses the
    others' results."""
    import os

    if os.environ.get("SMILE_DEBUG"):
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__)
    return SmileError(f"{path}: internal error {type(exc).__name__}: {' '.join(str(exc).split())[:200]} (please report it)")


def overall_exit_code(reports: list[PhotoReport]) -> int:
    """0 if every photo succeeded, else the exit status of the first failure."""
    for r in reports:
        if r.status == STATUS_FAILED:
            return r.exit_code or 1
    return 0


def as_they_were(r: PhotoReport) -> bool:
    """Written (``ok``) with no face edited because the faces chosen already smile as much (not, say, at
    strength 0)."""
    return (r.status == STATUS_OK and not any(f.get("edited") for f in r.faces)
            and any((f.get("reason") or "").startswith(ALREADY_SMILING) for f in r.faces))


def summary(reports: list[PhotoReport]) -> dict:
    """Counts by status (``already_smiling``: of the ``ok`` ones, those :func:`as_they_were`) plus the run's
    exit status."""
    return {
        "total": len(reports),
        "ok": sum(r.status == STATUS_OK for r in reports),
        "already_smiling": sum(as_they_were(r) for r in reports),
        "unchanged": sum(r.status == STATUS_UNCHANGED for r in reports),
        "failed": sum(r.status == STATUS_FAILED for r in reports),
        "exit_code": overall_exit_code(reports),
    }


def summary_line(reports: list[PhotoReport]) -> str:
    """e.g. ``3 photos: 2 smiled, 1 unchanged, 0 failed`` (``2 photos and 1 video: …``); photos that succeeded with no face changed
    (every face already smiling as much) are counted apart: ``2 smiled, 1 already smiling as much``."""
    s = summary(reports)
    as_is = s["already_smiling"]
    edited = sum(r.status == STATUS_OK and any(f.get("edited") for f in r.faces) for r in reports)
    left = s["ok"] - edited - as_is  # (written with no face changed for another reason: strength 0, say)
    less = bool(reports) and all(isinstance(r.strength, (int, float)) and r.strength < 0 for r in reports)
    smiled = (f"{edited} smiled{' less' if less else ''}" + (f", {as_is} already smiling as much" if as_is else "")
              + (f", {left} written with no face changed" if left else ""))
    videos = sum(is_video_path(r.input) for r in reports if r.input)
    photos = s["total"] - videos
    what = " and ".join(f"{n} {word}{'s' * (n != 1)}" for n, word in ((photos, "photo"), (videos, "video")) if n) or "0 photos"
    return f"{what}: {smiled}, {s['unchanged']} unchanged, {s['failed']} failed"


def document(reports: list[PhotoReport], version: str, model: dict | None, strength: float) -> dict:
    """The whole ``--json`` document."""
    return {
        "schema": SCHEMA_VERSION,
        "version": version,
        "model": model,
        "strength": strength,
        "photos": [r.to_dict() for r in reports],
        "summary": summary(reports),
    }
