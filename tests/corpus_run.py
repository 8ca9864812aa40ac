"""The generated corpus of odd and hostile files (tests/corpus.py), written once per test
session, and the checks that every run on it shares: inputs keep their bytes and mtime, errors
are one line, nothing temporary is left behind."""
from __future__ import annotations

import hashlib
import io
import json
import tempfile
from pathlib import Path

from click.testing import CliRunner

from corpus import Case, build_corpus

_CORPUS_TMP = tempfile.TemporaryDirectory(prefix="smile-corpus-")
#: The folder the corpus is written into (removed when the test session ends).
CORPUS = Path(_CORPUS_TMP.name)
CASES: list[Case] = build_corpus(CORPUS)
BY_NAME = {c.name: c for c in CASES}
#: Longest a CLI process may take before the test calls it hung (generous: CI machines are slow).
PROCESS_TIMEOUT = 300


def snapshot(path: Path) -> tuple[str, int, int]:
    """A file's sha256, mtime (ns) and size: equal snapshots mean the file was not touched."""
    st = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), st.st_mtime_ns, st.st_size


SNAPSHOTS = {c.name: snapshot(CORPUS / c.name) for c in CASES}


def assert_one_line(text: str) -> None:
    """``text`` is one non-empty line, without a traceback."""
    assert text.strip() and "\n" not in text.strip(), f"not one line: {text!r}"
    assert "Traceback" not in text


def assert_input_unchanged(case: Case) -> None:
    """The corpus file of ``case`` still has its bytes and mtime."""
    assert snapshot(CORPUS / case.name) == SNAPSHOTS[case.name], f"{case.name} was modified"


def leftovers(folder: Path) -> list[str]:
    """Temporary files of the atomic writes left anywhere under ``folder``."""
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".smile-tmp"))


def copy_case(name: str, folder: Path) -> Path:
    """A copy of the corpus file ``name`` in ``folder`` (for tests that may change or replace it)."""
    dst = folder / name
    dst.write_bytes((CORPUS / name).read_bytes())
    return dst


def invoke(args: list[str], **kw):
    """``smile ARGS...`` in this process (click's CliRunner); exceptions are not caught."""
    from smile_cli.main import cli

    return CliRunner().invoke(cli, args, catch_exceptions=False, **kw)


def stderr_lines_ok(stderr: str) -> None:
    """Only one-line errors and notes on stderr: no traceback, no stray warnings."""
    assert "Traceback" not in stderr, stderr
    for line in stderr.splitlines():
        if line.strip():
            assert line.startswith(("smile: error: ", "  note: ")), f"unexpected stderr line: {line!r}"


def serve(lines: list[bytes], model_path) -> list[dict]:
    """Run the worker loop in-process on ``lines``; return its replies (greeting first)."""
    from smile_cli.bridge.worker import WorkerSession, serve as serve_lines

    session = WorkerSession(str(model_path))
    session.load_model()
    out = io.BytesIO()
    assert serve_lines(session, io.BytesIO(b"".join(lines)), out) == 0
    return [json.loads(line) for line in out.getvalue().splitlines()]
