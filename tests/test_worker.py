"""`smile worker` (docs/worker-protocol.md): round trips, malformed requests, client loss."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from smile_cli.bridge.worker import MAX_LINE, WorkerSession, serve


@pytest.fixture
def blank(tmp_path: Path) -> Path:
    p = tmp_path / "blank.png"
    Image.fromarray(np.full((64, 80, 3), 90, np.uint8)).save(p)
    return p


def converse(session: WorkerSession, *lines: bytes | str | dict) -> list[dict]:
    """Feed request lines to an in-process worker; return the greeting and the replies."""
    raw = b""
    for line in lines:
        if isinstance(line, dict):
            line = json.dumps(line)
        raw += (line.encode() if isinstance(line, str) else line) + b"\n"
    out = io.BytesIO()
    assert serve(session, io.BytesIO(raw), out) == 0
    return [json.loads(ln) for ln in out.getvalue().splitlines()]


@pytest.fixture
def session(fixture_models) -> WorkerSession:
    s = WorkerSession(str(fixture_models["shift"]))
    s.load_model()
    return s


def test_greeting_hello_and_quit(session):
    replies = converse(session, {"cmd": "hello", "id": 1}, {"cmd": "quit", "id": 2}, {"cmd": "hello", "id": 3})
    greet, hello, bye = replies  # nothing is answered after quit
    assert greet == {"event": "ready", "protocol": 1, "version": greet["version"], "model": "fixture 0.0.0-fixture",
                     "strength_range": [-2.0, 4.0], "crop_size": 256}
    assert hello == {"id": 1, "ok": True, **{k: v for k, v in greet.items() if k != "event"}}
    assert bye == {"id": 2, "ok": True, "bye": True}


@pytest.mark.parametrize(
    "line, rid, words",
    [
        ("this is not json", None, "not valid JSON"),
        ("[1, 2]", None, "JSON object"),
        (b"\xff\xfe{}", None, "UTF-8"),
        ({"id": 5}, 5, "cmd"),
        ({"id": "x", "cmd": "dance"}, "x", "unknown cmd 'dance'"),
        ({"id": 6, "cmd": "smile", "output": "o.png"}, 6, "'input'"),
        ({"id": 7, "cmd": "smile", "input": "i.png"}, 7, "'output'"),
        ({"id": 8, "cmd": "smile", "input": "i.png", "output": "o.png", "strength": "big"}, 8, "'strength'"),
        ({"id": 9, "cmd": "smile", "input": "i.png", "output": "o.png", "strength": True}, 9, "'strength'"),
        ('{"id": 14, "cmd": "smile", "input": "i.png", "output": "o.png", "strength": ' + "9" * 400 + "}", 14,
         "field 'strength' must be a finite number"),  # (a whole number past a float: was an internal error)
        ({"id": 10, "cmd": "smile", "input": "i.png", "output": "o.png", "faces": [-1]}, 10, "'faces'"),
        ({"id": 11, "cmd": "smile", "input": "i.png", "output": "o.png", "faces": "most"}, 11, "'faces'"),
        ({"id": 12, "cmd": "detect", "input": 3}, 12, "'input'"),
        ({"id": 13, "cmd": "detect", "input": "i.png", "min_face": 0}, 13, "'min_face'"),
        ("[" * 100000 + "]" * 100000, None, "JSON"),
        ('{"id": -1e999, "cmd": "hello"}', None, "request has a number too large to read (-1e999)"),
    ],
)
def test_malformed_requests_get_bad_request_and_the_worker_goes_on(session, line, rid, words):
    greet, bad, hello = converse(session, line, {"cmd": "hello", "id": "after"})
    assert bad["ok"] is False and bad["id"] == rid
    assert bad["error"]["code"] == "bad_request" and words in bad["error"]["message"]
    assert hello["ok"] is True and hello["id"] == "after"


def test_huge_line_is_refused(session):
    huge = b'{"cmd": "hello", "pad": "' + b"x" * (MAX_LINE + 10) + b'"}'
    greet, bad, hello = converse(session, huge, {"cmd": "hello", "id": 1})
    assert bad == {"id": None, "ok": False, "error": {"code": "bad_request", "message": bad["error"]["message"]}}
    assert "longer than" in bad["error"]["message"]
    assert hello["ok"] and hello["id"] == 1


@pytest.mark.parametrize("ending", [b"\n", b"\r\n"])
def test_the_line_limit_is_the_requests_whatever_its_line_ending(session, ending):
    """Before: a request of exactly 1 MiB was refused when it ended with a Windows line ending."""
    head, tail = b'{"cmd": "hello", "id": 7, "pad": "', b'"}'
    exact = head + b"x" * (MAX_LINE - len(head) - len(tail)) + tail
    out = io.BytesIO()
    serve(session, io.BytesIO(exact + ending + exact + b"x" + ending), out)
    greet, fits, over = [json.loads(ln) for ln in out.getvalue().splitlines()]
    assert fits["ok"] and fits["id"] == 7
    assert over["id"] is None and "longer than" in over["error"]["message"]


def test_blank_lines_are_ignored(session):
    replies = converse(session, "", "   ", {"cmd": "hello", "id": 1})
    assert len(replies) == 2 and replies[1]["id"] == 1


def test_smile_round_trip_with_mask_and_selection(session, photo: Path, tmp_path: Path, astronaut):
    out, mask_out = tmp_path / "out.png", tmp_path / "mask.png"
    sel = np.zeros((512, 512), np.uint8)
    sel[:, 200:] = 255  # only the right part of the face may change
    Image.fromarray(sel, "L").save(tmp_path / "sel.png")
    before = photo.read_bytes()
    _, reply = converse(session, {"cmd": "smile", "id": 1, "input": str(photo), "output": str(out), "strength": 2,
                                  "faces": "largest", "selection": str(tmp_path / "sel.png"),
                                  "mask_output": str(mask_out)})
    assert reply["ok"] is True, reply
    assert reply["output"] == str(out) and reply["mask_output"] == str(mask_out)
    assert reply["faces"][0]["edited"] is True and len(reply["faces"][0]["box"]) == 4
    assert "infer" in reply["timings"]
    assert photo.read_bytes() == before
    got = np.asarray(Image.open(out))
    changed = np.abs(got.astype(int) - astronaut.astype(int)).sum(-1) > 0
    assert changed[:, 200:].any() and not changed[:, :200].any()
    mask = Image.open(mask_out)
    assert mask.mode == "L" and mask.size == (512, 512)
    m = np.asarray(mask)
    assert m[:, :200].max() == 0 and m[:, 200:].max() > 0


def test_detect_and_errors_by_code(session, photo: Path, blank: Path, tmp_path: Path):
    (tmp_path / "text.png").write_text("not an image")
    replies = converse(
        session,
        {"cmd": "detect", "id": 1, "input": str(photo)},
        {"cmd": "smile", "id": 2, "input": str(blank), "output": str(tmp_path / "o.png")},
        {"cmd": "smile", "id": 3, "input": str(tmp_path / "text.png"), "output": str(tmp_path / "o.png")},
        {"cmd": "smile", "id": 4, "input": str(tmp_path / "none.png"), "output": str(tmp_path / "o.png")},
        {"cmd": "smile", "id": 5, "input": str(photo), "output": str(tmp_path / "o.png"), "faces": [4]},
        {"cmd": "smile", "id": 6, "input": str(photo), "output": str(tmp_path / "no" / "o.png")},
    )
    det = replies[1]
    assert det["ok"] and det["faces"][0]["index"] == 0 and det["faces"][0]["edited"] is False
    codes = {r["id"]: r["error"]["code"] for r in replies[2:]}
    assert codes == {2: "no_face", 3: "bad_input", 4: "bad_input", 5: "bad_request", 6: "write_failed"}
    assert not (tmp_path / "o.png").exists()


def test_model_problem_is_reported_not_fatal(tmp_path: Path, photo: Path):
    s = WorkerSession(str(tmp_path / "missing.onnx"))
    s.load_model()
    greet, reply, hello = converse(s, {"cmd": "smile", "id": 1, "input": str(photo), "output": str(tmp_path / "o.png")},
                                   {"cmd": "hello", "id": 2})
    assert greet["model"] is None and greet["model_error"]["code"] == "model"
    assert greet["strength_range"] is None and greet["crop_size"] is None
    assert reply["ok"] is False and reply["error"]["code"] == "model"
    assert hello["ok"] is True


# ------------------------------------------------------------------------------ a real process


def _worker(env_model: Path, **kw) -> subprocess.Popen:
    env = dict(os.environ, SMILE_MODEL=str(env_model))
    return subprocess.Popen([sys.executable, "-m", "smile_cli", "worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, **kw)


def test_subprocess_session(fixture_models, photo: Path, tmp_path: Path):
    proc = _worker(fixture_models["shift"])
    requests = [
        {"cmd": "hello", "id": 1},
        "not json",
        {"cmd": "smile", "id": 2, "input": str(photo), "output": str(tmp_path / "o.png")},
        {"cmd": "smile", "id": 3, "input": str(photo), "output": str(tmp_path / "o2.png"), "strength": 0.5},
    ]
    data = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in requests).encode()
    out, err = proc.communicate(data, timeout=120)  # stdin closes after the last request
    assert proc.returncode == 0, err.decode()
    lines = [json.loads(ln) for ln in out.decode().splitlines()]  # every stdout line is protocol JSON
    assert lines[0]["event"] == "ready"
    assert [ln.get("id") for ln in lines[1:]] == [1, None, 2, 3]
    assert [ln["ok"] for ln in lines[1:]] == [True, False, True, True]
    assert (tmp_path / "o.png").is_file() and (tmp_path / "o2.png").is_file()
    assert b"Traceback" not in err


def test_client_that_disappears_ends_the_worker_cleanly(fixture_models, photo: Path, tmp_path: Path):
    proc = _worker(fixture_models["identity"])
    assert json.loads(proc.stdout.readline())["event"] == "ready"
    proc.stdout.close()  # the client stops reading: the next reply hits EPIPE
    try:
        for i in range(3):
            proc.stdin.write(json.dumps({"cmd": "hello", "id": i}).encode() + b"\n")
            proc.stdin.flush()
    except BrokenPipeError:
        pass
    try:
        proc.stdin.close()
    except BrokenPipeError:
        pass
    assert proc.wait(timeout=60) == 0
    err = proc.stderr.read()
    assert b"Traceback" not in err and b"Exception" not in err


def test_greeting_carries_the_models_strength_range(tmp_path: Path, photo: Path):
    """The range comes from the model file: another range in its metadata shows in the greeting
    and in hello, and a strength outside it is refused by the engine's one check."""
    from fixture_model import build_fixture_model

    model = build_fixture_model(tmp_path / "narrow.onnx", dx=2.0, strength_range=("-0.5", "1.5"))
    s = WorkerSession(str(model))
    s.load_model()
    greet, hello, far, near = converse(
        s, {"cmd": "hello", "id": 1},
        {"cmd": "smile", "id": 2, "input": str(photo), "output": str(tmp_path / "o.png"), "strength": 2},
        {"cmd": "smile", "id": 3, "input": str(photo), "output": str(tmp_path / "o.png"), "strength": 1.5})
    assert greet["strength_range"] == hello["strength_range"] == [-0.5, 1.5]
    assert far["ok"] is False and far["error"] == {
        "code": "bad_request", "message": f"{photo}: strength 2 is outside this model's range [-0.5, 1.5]"}
    assert near["ok"] is True and (tmp_path / "o.png").is_file()


# ------------------------------------------------------------------------------ hostile clients


@pytest.mark.parametrize("field", ["input", "output", "selection", "mask_output"])
def test_a_path_no_file_can_have_is_a_bad_request(session, photo: Path, tmp_path: Path, field):
    """A lone surrogate is valid JSON but no file name: before, an output or mask path holding one
    was an 'internal error' (UnicodeEncodeError)."""
    req = {"cmd": "smile", "id": 1, "input": str(photo), "output": str(tmp_path / "o.png")}
    req[field] = str(tmp_path / "x\ud800.png")
    line = json.dumps(req)  # ensure_ascii: the surrogate travels as \ud800
    greet, bad, hello = converse(session, line, {"cmd": "hello", "id": 2})
    assert bad["ok"] is False and bad["id"] == 1
    assert bad["error"]["code"] == "bad_request" and repr(field) in bad["error"]["message"]
    assert hello["ok"] is True
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([photo.name])


def test_a_usage_error_while_loading_is_bad_request(monkeypatch, fixture_models):
    """The protocol has no 'usage' code (docs/worker-protocol.md): before, SMILE_THREADS=abc gave
    model_error.code 'usage'."""
    import smilecore.pipeline

    monkeypatch.setenv("SMILE_THREADS", "abc")
    smilecore.pipeline._load_cached.cache_clear()  # (a model another test loaded would not read it again)
    s = WorkerSession(str(fixture_models["identity"]))
    s.load_model()
    greet, hello = converse(s, {"cmd": "hello", "id": 1})
    assert greet["model"] is None
    assert greet["model_error"]["code"] == "bad_request" and "SMILE_THREADS" in greet["model_error"]["message"]
    assert hello["model_error"] == greet["model_error"]


class _Trickle(io.RawIOBase):
    """A raw stdout that takes at most 5 bytes per write, as a pipe may after a signal."""

    def __init__(self):
        self.data = bytearray()

    def writable(self):
        return True

    def write(self, b):
        chunk = bytes(b[:5])
        self.data += chunk
        return len(chunk)


def test_each_reply_is_written_whole_even_in_pieces(session):
    """Before: the worker wrote each reply with one raw write() and dropped what it did not take."""
    out = _Trickle()
    raw = b"".join(json.dumps({"cmd": "hello", "id": i}).encode() + b"\n" for i in range(3))
    assert serve(session, io.BytesIO(raw), out) == 0
    lines = [json.loads(ln) for ln in bytes(out.data).splitlines()]
    assert [ln.get("id") for ln in lines] == [None, 0, 1, 2]


def test_the_protocol_doc_lists_the_fields_the_worker_sends(session, photo: Path, tmp_path: Path):
    """docs/worker-protocol.md against the code: the greeting example, and the face fields of smile and detect."""
    import re

    doc = (Path(__file__).resolve().parent.parent / "docs" / "worker-protocol.md").read_text(encoding="utf-8")
    greet, det, smiled = converse(session, {"cmd": "detect", "id": 1, "input": str(photo)},
                                  {"cmd": "smile", "id": 2, "input": str(photo), "output": str(tmp_path / "o.png")})
    example = json.loads(re.search(r'^    (\{"event": "ready".*?\})\n', doc, re.S | re.M).group(1).replace("\n", " "))
    assert sorted(example) == sorted(greet)
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `(\w+)` \|.*$", doc, re.M)}

    def listed(row: str) -> list[str]:
        return re.findall(r'"(\w+)"', re.search(r'\{"index".*?\}', row.split("|")[3]).group(0))

    assert listed(rows["detect"]) == list(det["faces"][0])
    assert listed(rows["smile"]) == list(smiled["faces"][0])
    for key in smiled:
        if key not in ("id", "ok"):
            assert f"`{key}`" in rows["smile"].split("|")[3], key
    for key in det:
        if key not in ("id", "ok"):
            assert f"`{key}`" in rows["detect"].split("|")[3], key


def test_too_large_names_the_workers_own_setting(session, photo: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("SMILE_MAX_PIXELS", "1000")
    (_greet, reply) = converse(session, {"cmd": "smile", "id": 1, "input": str(photo), "output": str(tmp_path / "o.png")})
    assert reply["ok"] is False and reply["error"]["code"] == "too_large"
    message = reply["error"]["message"]
    assert "SMILE_MAX_PIXELS in the worker's environment" in message and "--max-pixels" not in message
    assert not (tmp_path / "o.png").exists()


def test_replies_carry_what_reading_the_photo_found(session, astronaut, tmp_path: Path):
    pages = tmp_path / "two.tif"
    Image.fromarray(astronaut).save(pages, save_all=True, append_images=[Image.fromarray(astronaut)])
    (_greet, reply) = converse(session, {"cmd": "smile", "id": 1, "input": str(pages), "output": str(tmp_path / "o.png")})
    assert reply["ok"] is True, reply
    assert any("has 2 frames or pages; only the first is used" in n for n in reply["notes"]), reply["notes"]


def test_the_worker_warms_up_the_whole_detector(monkeypatch):
    # dlib's HOG detector judges which way up faces are: loading it (~0.4 s) belongs to start-up,
    # not to the first photo with a face
    import smilecore.detect
    from smile_cli.bridge import worker as worker_module

    calls = []
    monkeypatch.setattr(smilecore.detect, "warm_up", lambda: calls.append(1))
    worker_module._warm_up()
    assert calls == [1]


def test_verbose_logs_every_request_and_how_it_ended(fixture_models):
    import io

    log = io.StringIO()
    session = WorkerSession(verbose=True, log=log)
    session.handle_line(b'{"cmd": "hello", "id": 1}')
    session.handle_line(b"not json")
    session.handle_line(b'{"cmd": "detect", "id": 2, "input": 3}')
    lines = log.getvalue().splitlines()
    assert [line.rsplit(" in ", 1)[0] for line in lines] == [
        "smile worker: hello done", "smile worker: request failed (bad_request)", "smile worker: detect failed (bad_request)"]
    assert all(line.endswith(" s") for line in lines)


def test_names_too_long_read_only_outputs_and_a_stopped_mask_write(session, photo: Path, tmp_path: Path, monkeypatch):
    long = "a" * 300
    _, a, b = converse(session, {"cmd": "detect", "id": 1, "input": str(tmp_path / f"{long}.png")},
                       {"cmd": "smile", "id": 2, "input": str(photo), "output": str(tmp_path / f"{long}.png")})
    assert a["error"]["code"] == "bad_input" and "File name too long" in a["error"]["message"], a
    assert b["error"]["code"] == "write_failed" and b["error"]["message"].endswith(": could not write it (file name too long)")
    ro = tmp_path / "ro.png"
    ro.write_bytes(b"kept")
    ro.chmod(0o444)
    _, c = converse(session, {"cmd": "smile", "id": 3, "input": str(photo), "output": str(ro), "strength": 2})
    assert c["error"]["code"] == "write_failed" and "not replaced, it is read-only" in c["error"]["message"]
    assert ro.read_bytes() == b"kept"
    import smilecore.encode as E

    real = E.save_image

    def stopped_at_the_mask(path, *a, **k):
        if str(path).endswith("mask.png"):
            raise KeyboardInterrupt  # (SIGTERM while the mask is written)
        return real(path, *a, **k)

    monkeypatch.setattr(E, "save_image", stopped_at_the_mask)  # (the worker imports it when it writes)
    with pytest.raises(KeyboardInterrupt):
        session.handle_line(json.dumps({"cmd": "smile", "id": 4, "input": str(photo), "output": str(tmp_path / "r.png"),
                                        "strength": 2, "mask_output": str(tmp_path / "mask.png")}).encode())
    assert not (tmp_path / "r.png").exists()  # no result without the mask asked for


def test_a_read_only_mask_leaves_an_existing_result_as_it_was(session, photo: Path, tmp_path: Path):
    """The mask's destination is checked before any work: the result already there is not replaced, then
    deleted, because the mask could not be written."""
    res, mask = tmp_path / "res.png", tmp_path / "mask.png"
    res.write_bytes(b"the user's earlier result")
    mask.write_bytes(b"kept")
    mask.chmod(0o444)
    _, a = converse(session, {"cmd": "smile", "id": 1, "input": str(photo), "output": str(res),
                              "mask_output": str(mask), "strength": 2})
    assert a["error"]["code"] == "write_failed" and "mask.png: not replaced, it is read-only" in a["error"]["message"]
    assert res.read_bytes() == b"the user's earlier result" and mask.read_bytes() == b"kept"


def test_a_mask_that_fails_at_its_write_leaves_the_result_as_it_was(session, photo: Path, tmp_path: Path, monkeypatch):
    """All or nothing when the mask fails only as it is written: the new result is complete but has not yet
    replaced the earlier one."""
    import smilecore.atomic as atomic

    res = tmp_path / "res.png"
    res.write_bytes(b"earlier")
    real = atomic.write_atomic

    def full_disk_for_the_mask(target, write, *a, **k):
        if str(target).endswith("m.png"):
            raise atomic.WriteError(f"{target}: could not write it (No space left on device)")
        return real(target, write, *a, **k)

    monkeypatch.setattr(atomic, "write_atomic", full_disk_for_the_mask)
    _, a = converse(session, {"cmd": "smile", "id": 1, "input": str(photo), "output": str(res),
                              "mask_output": str(tmp_path / "m.png"), "strength": 2})
    assert a["error"]["code"] == "write_failed" and "No space left" in a["error"]["message"], a
    assert res.read_bytes() == b"earlier" and not (tmp_path / "m.png").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # (no temporary file left)


def test_a_private_photos_mask_is_private_too(session, photo: Path, tmp_path: Path):
    photo.chmod(0o600)
    _, a = converse(session, {"cmd": "smile", "id": 1, "input": str(photo), "output": str(tmp_path / "r.png"),
                              "mask_output": str(tmp_path / "m.png"), "strength": 2})
    assert a["ok"], a
    assert (tmp_path / "r.png").stat().st_mode & 0o077 == 0 and (tmp_path / "m.png").stat().st_mode & 0o077 == 0


def test_a_folder_that_may_not_be_opened_is_bad_input_not_an_internal_error(session, photo: Path, tmp_path: Path,
                                                                             monkeypatch):
    import smilecore.decode as D

    real = D.os.stat

    def locked(path, *a, **k):  # (as root no folder is locked: its permission error, made up)
        if "locked" in str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(D.os, "stat", locked)
    _, a = converse(session, {"cmd": "detect", "id": 1, "input": str(tmp_path / "locked" / "p.jpg")})
    assert a["error"]["code"] == "bad_input" and "permission denied" in a["error"]["message"], a


def test_a_signal_during_the_mask_and_result_renames_waits_for_both():
    """deferred_signals: a SIGTERM that arrives while the two files take their places is delivered after."""
    import os
    import signal

    from smilecore.signals import deferred_signals

    seen = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(("handler", signum)))
    try:
        with deferred_signals():
            os.kill(os.getpid(), signal.SIGTERM)
            seen.append(("inside", None))
        seen.append(("after", None))
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen == [("inside", None), ("handler", signal.SIGTERM), ("after", None)]


def test_a_signal_once_the_result_and_its_mask_are_in_place_waits_for_the_reply(session, photo: Path, tmp_path: Path,
                                                                                   monkeypatch):
    """Before: SIGTERM just after both files were renamed ended the worker with no reply, so the client never
    learnt that they had been replaced."""
    import signal

    import smilecore.encode as encode

    out, dst = io.BytesIO(), tmp_path / "out.png"
    seen: list[bytes] = []
    real = encode.save_image

    def save_then_signal(path, *args, **kw):
        notes = real(path, *args, **kw)
        if Path(path) == dst:  # (the result and its mask are both in place)
            os.kill(os.getpid(), signal.SIGTERM)
        return notes

    monkeypatch.setattr(encode, "save_image", save_then_signal)
    old = signal.signal(signal.SIGTERM, lambda num, frame: seen.append(out.getvalue()))
    try:
        request = {"cmd": "smile", "id": 5, "input": str(photo), "output": str(dst),
                   "mask_output": str(tmp_path / "m.png"), "strength": 1}
        serve(session, io.BytesIO(json.dumps(request).encode() + b"\n"), out)
    finally:
        signal.signal(signal.SIGTERM, old)
    assert len(seen) == 1, seen  # (the signal came through, once)
    replies = [json.loads(line) for line in seen[0].splitlines()]
    assert replies[-1]["id"] == 5 and replies[-1]["ok"] is True  # (and only after the reply had been sent)
    assert dst.is_file() and (tmp_path / "m.png").is_file()


def test_a_client_gone_during_a_video_stops_it_and_leaves_nothing(session, picture, tmp_path: Path):
    """Before: with its stdout closed, the worker went on encoding the whole clip, then wrote a result nobody read."""
    pytest.importorskip("av")
    from smilecore.video_synth import make_clip

    clip = make_clip(tmp_path / "c.mp4", picture, size=(320, 240), frames=120, face_height=0.95, audio=False)

    class GoneAfterGreeting(io.BytesIO):
        def write(self, data):
            if self.getvalue():
                raise BrokenPipeError(32, "Broken pipe")
            return super().write(data)

    request = {"cmd": "smile", "id": 1, "input": str(clip.path), "output": str(tmp_path / "o.mp4"), "strength": 2}
    assert serve(session, io.BytesIO(json.dumps(request).encode() + b"\n"), GoneAfterGreeting()) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.mp4"]  # (no result, no temporary file)
