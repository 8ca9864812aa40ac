"""How `smile` plans its outputs: links that would overwrite inputs or merge results, one file under two
names, `-r --out-dir` keeping sub-folders, hidden folders, and `smile detect` taking what `smile` takes."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from smile_cli.inputs import expand_inputs, plan_outputs
from smile_cli.main import cli


def run(*args: object):
    """``smile ARGS`` in this process; the result has exit_code, stdout and stderr."""
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def md5s(folder: Path) -> dict[str, str]:
    """Every regular file under ``folder`` (links not followed) with its md5."""
    return {str(p.relative_to(folder)): md5(p) for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def files(folder: Path) -> list[str]:
    """Every file or link under ``folder``, relative, sorted (folders themselves left out)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_symlink() or not p.is_dir())


def one_line_error(result, *needles: str) -> str:
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("smile: error:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for n in needles:
        assert n in errors[0], errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def jpeg(tmp_path_factory, astronaut) -> Path:
    """The neutral astronaut as a JPEG (quality 90), to be copied into each test's folders."""
    p = tmp_path_factory.mktemp("src") / "neutral.jpg"
    Image.fromarray(astronaut).save(p, quality=90)
    return p


def put(jpeg: Path, *paths: Path) -> None:
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(jpeg.read_bytes())


# ------------------------------------------------------------------ 1. links in --out-dir


@pytest.mark.parametrize("link", ["symbolic", "hard"])
def test_a_link_in_out_dir_to_another_input_is_refused(shift, jpeg: Path, tmp_path: Path, link: str):
    d, dout = tmp_path / "d", tmp_path / "dout"
    put(jpeg, d / "x.jpg", d / "y.jpg")
    dout.mkdir()
    if link == "symbolic":
        (dout / "x.smile.jpg").symlink_to(Path("..") / "d" / "y.jpg")
    else:
        os.link(d / "y.jpg", dout / "x.smile.jpg")
    before = md5s(d)
    for jobs in ("1", "2"):
        r = run(d / "x.jpg", d / "y.jpg", "--out-dir", dout, "--model", shift, "-j", jobs)
        assert r.exit_code == 2, r.stderr
        one_line_error(r, "x.smile.jpg", "y.jpg", "never overwrites inputs", "--in-place")
        assert r.stdout == ""
        assert md5s(d) == before  # neither input replaced
        assert files(dout) == ["x.smile.jpg"]  # nothing written


@pytest.mark.parametrize("link", ["symbolic", "hard"])
def test_two_results_that_are_one_file_through_a_link_are_refused(shift, jpeg: Path, tmp_path: Path, link: str):
    d, dout = tmp_path / "d", tmp_path / "dout"
    put(jpeg, d / "x.jpg", d / "y.jpg")
    dout.mkdir()
    if link == "symbolic":
        (dout / "x.smile.jpg").symlink_to("y.smile.jpg")  # (dangling until y's result is written)
    else:
        (dout / "y.smile.jpg").write_bytes(b"old result")
        os.link(dout / "y.smile.jpg", dout / "x.smile.jpg")
    before_in, before_out = md5s(d), md5s(dout)
    r = run(d / "x.jpg", d / "y.jpg", "--out-dir", dout, "--model", shift, "-j", "1")
    assert r.exit_code == 2, r.stderr
    one_line_error(r, "x.smile.jpg", "y.smile.jpg", "same file")
    assert md5s(d) == before_in and md5s(dout) == before_out
    assert files(dout) == sorted(["x.smile.jpg", *(["y.smile.jpg"] if link == "hard" else [])])


def test_a_result_over_an_input_through_a_linked_out_dir_is_refused(shift, jpeg: Path, tmp_path: Path):
    d = tmp_path / "d"
    put(jpeg, d / "x.jpg")
    (tmp_path / "same").symlink_to("d")  # --out-dir is the photos' own folder under another name
    before = md5s(d)
    r = run(d / "x.jpg", "--out-dir", tmp_path / "same", "--suffix", "", "--model", shift, "-j", "1")
    assert r.exit_code == 2
    one_line_error(r, "never overwrites inputs")
    assert md5s(d) == before and files(d) == ["x.jpg"]


# ------------------------------------------------------------------ 2. --in-place on one file under two names


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_in_place_edits_a_file_given_under_two_names_once(shift, jpeg: Path, tmp_path: Path, jobs: str):
    ip, control = tmp_path / "ip", tmp_path / "control"
    put(jpeg, ip / "real.jpg", control / "real.jpg")
    (ip / "l1.jpg").symlink_to("real.jpg")
    os.link(ip / "real.jpg", ip / "hard.jpg")
    assert run(control / "real.jpg", "--in-place", "--model", shift, "-j", "1").exit_code == 0
    once = md5(control / "real.jpg")
    assert once != md5(jpeg)

    r = run(ip / "real.jpg", ip / "l1.jpg", "--in-place", "--model", shift, "-j", jobs, "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [p["input"] for p in doc["photos"]] == [str(ip / "real.jpg")]  # the first name given
    assert md5(ip / "real.jpg") == once  # edited once, not twice
    assert (ip / "l1.jpg").is_symlink() and md5(ip / "hard.jpg") == md5(jpeg)  # (a hard link keeps the original)
    assert files(ip) == ["hard.jpg", "l1.jpg", "real.jpg"]


def test_in_place_on_hard_links_edits_each_name_once(shift, jpeg: Path, tmp_path: Path):
    ip, control = tmp_path / "ip", tmp_path / "control"
    put(jpeg, ip / "real.jpg", control / "real.jpg")
    os.link(ip / "real.jpg", ip / "hard.jpg")
    assert run(control / "real.jpg", "--in-place", "--model", shift, "-j", "1").exit_code == 0
    r = run(ip / "real.jpg", ip / "hard.jpg", "--in-place", "--model", shift, "-j", "2")
    assert r.exit_code == 0, r.stderr  # (two names, each replaced on its own: not a clash)
    assert md5(ip / "real.jpg") == md5(ip / "hard.jpg") == md5(control / "real.jpg")


def test_a_folder_and_a_link_into_it_list_each_photo_once(tmp_path: Path, jpeg: Path):
    put(jpeg, tmp_path / "f" / "a.jpg")
    (tmp_path / "f" / "b.jpg").symlink_to("a.jpg")
    got = expand_inputs([str(tmp_path / "f" / "b.jpg"), str(tmp_path / "f")])
    assert [(str(p), problem) for p, problem in got] == [(str(tmp_path / "f" / "b.jpg"), None)]


# ------------------------------------------------------------------ 3. -r --out-dir keeps the sub-folders


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_recursive_out_dir_mirrors_sub_folders(shift, jpeg: Path, tmp_path: Path, jobs: str):
    c, cout = tmp_path / "c", tmp_path / "cout"
    put(jpeg, c / "s1" / "x.jpg", c / "s2" / "x.jpg", c / "s2" / "deep" / "z.jpg", c / "top.jpg",
        tmp_path / "elsewhere" / "named.jpg")
    before = md5s(c)
    r = run(c, tmp_path / "elsewhere" / "named.jpg", "-r", "--out-dir", cout, "--model", shift, "-j", jobs, "--json")
    assert r.exit_code == 0, r.stderr
    assert files(cout) == ["named.smile.jpg", "s1/x.smile.jpg", "s2/deep/z.smile.jpg", "s2/x.smile.jpg", "top.smile.jpg"]
    doc = json.loads(r.stdout)
    assert {p["input"]: p["output"] for p in doc["photos"]} == {
        str(c / "s1" / "x.jpg"): str(cout / "s1" / "x.smile.jpg"),
        str(c / "s2" / "deep" / "z.jpg"): str(cout / "s2" / "deep" / "z.smile.jpg"),
        str(c / "s2" / "x.jpg"): str(cout / "s2" / "x.smile.jpg"),
        str(c / "top.jpg"): str(cout / "top.smile.jpg"),
        str(tmp_path / "elsewhere" / "named.jpg"): str(cout / "named.smile.jpg"),
    }
    assert md5s(c) == before
    with Image.open(cout / "s2" / "deep" / "z.smile.jpg") as im:
        assert im.format == "JPEG" and im.size == (512, 512)


def test_mirroring_is_relative_to_the_folder_given(tmp_path: Path, jpeg: Path):
    from smile_cli.inputs import Found

    put(jpeg, tmp_path / "c" / "s1" / "x.jpg")
    jobs = plan_outputs(expand_inputs([str(tmp_path / "c" / "s1")], recursive=True), None, str(tmp_path / "o"),
                        ".smile", None, False)
    assert [j.output for j in jobs] == [tmp_path / "o" / "x.smile.jpg"]
    assert not (tmp_path / "o").exists()  # (planning creates nothing)
    found = Found(tmp_path / "c" / "s1" / "x.jpg", None, tmp_path / "c")
    path, problem = found  # unpacks like the plain pair it replaces
    assert problem is None and found.folder == tmp_path / "c"


@pytest.mark.parametrize("as_json", [False, True])
def test_a_file_in_the_way_of_a_mirrored_folder_fails_only_its_photos(as_json, shift, jpeg: Path, tmp_path: Path):
    c, cout = tmp_path / "c", tmp_path / "cout"
    put(jpeg, c / "s1" / "x.jpg")
    put(jpeg, c / "s1" / "deeper" / "y.jpg")
    put(jpeg, c / "s2" / "z.jpg")
    put(jpeg, c / "w.jpg")
    cout.mkdir()
    (cout / "s1").write_bytes(b"not a folder")
    r = run(c, "-r", "--out-dir", cout, "--model", shift, "-j", "1", *(["--json"] if as_json else []))
    assert r.exit_code == 7, r.stderr
    if as_json:
        doc = json.loads(r.stdout)
        assert doc["summary"] == {"total": 4, "ok": 2, "already_smiling": 0, "unchanged": 0, "failed": 2, "exit_code": 7}
        errors = [e["error"]["message"] for e in doc["photos"] if e["status"] == "failed"]
        assert {e["error"]["code"] for e in doc["photos"] if e["status"] == "failed"} == {"write_failed"}
    else:
        errors = [line for line in r.stderr.splitlines() if line.startswith("smile: error: ")]
    assert len(errors) == 2 and all(f"cannot write it, {cout / 's1'} is a file, not a folder" in e for e in errors)
    assert files(cout) == ["s1", "s2/z.smile.jpg", "w.smile.jpg"]


def test_an_out_dir_below_a_file_is_a_usage_error(shift, jpeg: Path, tmp_path: Path):
    (tmp_path / "afile").write_bytes(b"x")
    r = run(jpeg, "--out-dir", tmp_path / "afile" / "x", "--model", shift)
    assert r.exit_code == 2
    one_line_error(r, f"--out-dir {tmp_path / 'afile' / 'x'}: {tmp_path / 'afile'} is a file, not a folder")


@pytest.mark.parametrize(
    "names, extra, words",
    [
        (["e/a.jpg", "e/a.png"], ["--ext", "jpg"], ["a.smile.jpg", "leave out --ext"]),
        (["c/s1/x.jpg", "c/s2/x.jpg"], [], ["x.smile.jpg", "different folders", "-r", "own --out-dir"]),
        (["c/s1", "c/s2"], [], ["x.smile.jpg", "different folders", "own --out-dir"]),
    ],
)
def test_two_photos_to_one_result_get_advice_that_separates_them(shift, jpeg: Path, tmp_path: Path, names, extra, words):
    put(jpeg, tmp_path / "c" / "s1" / "x.jpg", tmp_path / "c" / "s2" / "x.jpg", tmp_path / "e" / "a.jpg")
    Image.open(jpeg).save(tmp_path / "e" / "a.png")
    r = run(*(tmp_path / n for n in names), "--out-dir", tmp_path / "out", *extra, "--model", shift, "-j", "1")
    assert r.exit_code == 2
    line = one_line_error(r, "would both be written to", *words)
    assert "use --suffix or separate runs" not in line  # (--suffix renames both the same way)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ 4. hidden folders and links in -r walks


def test_recursive_skips_hidden_folders_but_walks_one_named(shift, jpeg: Path, tmp_path: Path):
    c = tmp_path / "c"
    put(jpeg, c / "s1" / "x.jpg", c / ".thumbnails" / "IMG_1.jpg", c / "s1" / ".cache" / "y.jpg", c / ".hidden.jpg")
    r = run(c, "-r", "--model", shift, "-j", "1", "--json")
    assert r.exit_code == 0, r.stderr
    assert [p["input"] for p in json.loads(r.stdout)["photos"]] == [str(c / "s1" / "x.jpg")]
    assert files(c / ".thumbnails") == ["IMG_1.jpg"] and files(c / "s1" / ".cache") == ["y.jpg"]
    assert (c / "s1" / "x.smile.jpg").is_file()

    r = run(c / ".thumbnails", "-r", "--model", shift, "-j", "1")  # named on the command line: walked
    assert r.exit_code == 0, r.stderr
    assert files(c / ".thumbnails") == ["IMG_1.jpg", "IMG_1.smile.jpg"]


def test_recursive_skips_linked_folders_and_broken_links_silently(tmp_path: Path, jpeg: Path):
    c = tmp_path / "c"
    put(jpeg, c / "s1" / "x.jpg", tmp_path / "outside" / "o.jpg")
    (c / "loop").symlink_to("..")  # a link back up: following it would never end
    (c / "out").symlink_to(tmp_path / "outside")
    (c / "broken.jpg").symlink_to("nowhere.jpg")
    (c / "photo-link.jpg").symlink_to(tmp_path / "outside" / "o.jpg")
    got = expand_inputs([str(c)], recursive=True)
    assert [(p, problem) for p, problem in got] == [(c / "photo-link.jpg", None), (c / "s1" / "x.jpg", None)]


def test_a_broken_link_named_as_a_photo_is_an_input_error(shift, jpeg: Path, tmp_path: Path):
    put(jpeg, tmp_path / "ok.jpg")
    (tmp_path / "broken.jpg").symlink_to("nowhere.jpg")
    r = run(tmp_path / "broken.jpg", tmp_path / "ok.jpg", "--model", shift, "-j", "1")
    assert r.exit_code == 4
    one_line_error(r, "broken.jpg", "no such file", "nowhere.jpg")
    assert (tmp_path / "ok.smile.jpg").is_file()  # the others still run


# ------------------------------------------------------------------ 5. smile detect takes what smile takes


def test_detect_takes_globs_folders_and_recursion(jpeg: Path, tmp_path: Path):
    ex = tmp_path / "ex"
    put(jpeg, ex / "o1.jpg", ex / "o2.jpg", ex / "sub" / "o3.jpg", ex / ".thumbnails" / "t.jpg")
    blank = ex / "wall.png"
    Image.fromarray(np.full((60, 80, 3), 128, np.uint8)).save(blank)

    r = run("detect", str(ex / "o*.jpg"), "--json")  # a quoted glob
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [e["input"] for e in doc] == [str(ex / "o1.jpg"), str(ex / "o2.jpg")]
    assert all(len(e["faces"]) == 1 and e["error"] is None for e in doc)

    r = run("detect", ex / "o1.jpg", ex)  # a folder (o1 named twice: listed once)
    assert r.exit_code == 3  # wall.png has no face; the others are still listed
    one_line_error(r, "wall.png", "no face")
    assert [ln.split(":")[0] for ln in r.stdout.splitlines()] == [str(ex / "o1.jpg"), str(ex / "o2.jpg")]

    r = run("detect", ex, "-r", "--json")
    assert [e["input"] for e in json.loads(r.stdout)] == [str(ex / p) for p in ("o1.jpg", "o2.jpg", "sub/o3.jpg", "wall.png")]

    r = run("detect", str(ex / "z*.jpg"))
    assert r.exit_code == 4
    one_line_error(r, "z*.jpg", "no photo matches")


def test_a_refused_run_or_a_failed_folder_leaves_no_empty_sub_folders(shift, jpeg: Path, tmp_path: Path):
    c, cout = tmp_path / "c", tmp_path / "cout"
    put(jpeg, c / "s1" / "deep" / "x.jpg", c / "s2" / "y.jpg")
    (c / "bad").mkdir()
    (c / "bad" / "broken.jpg").write_text("not a photo")
    r = run(c, "-r", "--out-dir", cout, "--model", shift, "--strength", "99")  # refused once planned
    assert r.exit_code == 2 and not cout.exists()  # (the --out-dir it made, empty, is gone too)
    r = run(c, "-r", "--out-dir", cout, "--model", shift)  # bad/ holds no result: no empty folder
    assert r.exit_code == 4
    assert files(cout) == ["s1/deep/x.smile.jpg", "s2/y.smile.jpg"] and not (cout / "bad").exists()


def test_an_unknown_ext_names_the_option_and_the_formats(tmp_path):
    from click.testing import CliRunner

    from smile_cli.main import cli

    r = CliRunner().invoke(cli, [str(tmp_path / "x.jpg"), "--ext", "gif"])
    assert r.exit_code == 2
    line = r.output.strip()
    assert line.startswith("smile: error: --ext gif is not a format Smile can write (use .avif, .bmp, ") and "x.gif" not in line
    assert ".mp4" in line


def test_models_path_refuses_a_file_smile_would_refuse(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from smile_cli.main import cli

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    monkeypatch.setenv("SMILE_MODEL", str(bad))
    r = CliRunner().invoke(cli, ["models", "path"])
    assert r.exit_code == 6 and "not a readable ONNX model" in r.output and str(bad) + "\n" != r.output


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_skip_existing_goes_on_where_a_batch_stopped(jobs, shift, jpeg: Path, tmp_path: Path):
    c, out = tmp_path / "c", tmp_path / "out"
    put(jpeg, c / "a.jpg", c / "b.jpg", c / "s1" / "x.jpg")
    first = run(c / "a.jpg", "--out-dir", out, "--model", shift, "-j", "1")
    assert first.exit_code == 0
    before = md5s(out)
    (out / "s1").mkdir()
    (out / "s1" / "x.smile.jpg").write_bytes(b"an earlier result, kept as it is")
    r = run(c, "-r", "--out-dir", out, "--model", shift, "-j", jobs, "--skip-existing", "--json")
    assert r.exit_code == 0, r.stderr
    assert "smile: note: 2 of 3 inputs left out: their results exist (--skip-existing)" in r.stderr
    doc = json.loads(r.stdout)
    assert [Path(e["input"]).name for e in doc["photos"]] == ["b.jpg"]
    assert doc["summary"]["skipped"] == 2 and doc["summary"]["ok"] == 1
    assert md5s(out)["a.smile.jpg"] == before["a.smile.jpg"] and (out / "s1" / "x.smile.jpg").read_bytes().startswith(b"an ")
    assert files(out) == ["a.smile.jpg", "b.smile.jpg", "s1/x.smile.jpg"]
    r = run(c, "-r", "--out-dir", out, "--model", shift, "--skip-existing")  # nothing left to do
    assert r.exit_code == 0 and "3 of 3 inputs left out" in r.stderr
    r = run(c / "a.jpg", "--in-place", "--skip-existing", "--model", shift)
    assert r.exit_code == 2
    one_line_error(r, "--skip-existing leaves out photos whose result exists, and with --in-place")
    long = c / ("y" * 248 + ".jpg")  # (its result's name is too long for the file system: not there, not a traceback)
    put(jpeg, long)
    r = run(long, "--skip-existing", "--model", shift)
    assert r.exit_code == 7 and "internal error" not in r.stderr
    one_line_error(r, ".smile.jpg: could not write it (file name too long)")


def test_a_read_only_result_or_photo_is_not_replaced(shift, jpeg: Path, tmp_path: Path):
    c, out = tmp_path / "c", tmp_path / "out"
    put(jpeg, c / "a.jpg", c / "b.jpg")
    out.mkdir()
    (out / "a.smile.jpg").write_bytes(b"kept")
    (out / "a.smile.jpg").chmod(0o444)
    r = run(c, "--out-dir", out, "--model", shift, "-j", "1")
    assert r.exit_code == 7
    one_line_error(r, f"{out / 'a.smile.jpg'}: not replaced, it is read-only: make it writable (chmod u+w) or remove it")
    assert (out / "a.smile.jpg").read_bytes() == b"kept" and (out / "b.smile.jpg").is_file()
    (c / "b.jpg").chmod(0o444)
    before = md5(c / "b.jpg")
    r = run(c / "b.jpg", "--in-place", "--model", shift)
    assert r.exit_code == 7 and md5(c / "b.jpg") == before
    one_line_error(r, f"{c / 'b.jpg'}: not replaced, it is read-only")
    r = run(c / "b.jpg", "--in-place", "--model", shift, "-s", "0")  # nothing to write: no refusal
    assert r.exit_code == 0 and md5(c / "b.jpg") == before
    (out / "b.smile.jpg").chmod(0o644)  # a writable result is replaced, as before
    assert run(c / "b.jpg", "--out-dir", out, "--model", shift).exit_code == 0


def test_more_jobs_than_cores_are_as_many_as_the_cores_with_a_note(shift, jpeg: Path, tmp_path: Path, monkeypatch):
    from smile_cli import parallel

    monkeypatch.setattr(parallel, "default_jobs", lambda: 1)
    c = tmp_path / "c"
    put(jpeg, c / "a.jpg", c / "b.jpg")
    r = run(c, "--out-dir", tmp_path / "o", "--model", shift, "-j", "8")
    assert r.exit_code == 0 and "smile: note: -j 8: smile may use 1 core here, so 1 worker process" in r.stderr
    assert files(tmp_path / "o") == ["a.smile.jpg", "b.smile.jpg"]


def test_an_out_dir_inside_the_tree_and_earlier_default_results_are_not_smiled_again(shift, jpeg: Path, tmp_path: Path):
    c = tmp_path / "c"
    put(jpeg, c / "a.jpg", c / "sub" / "b.jpg")
    assert run(c, "-r", "--out-dir", c / "smiled", "--model", shift).exit_code == 0
    assert files(c / "smiled") == ["a.smile.jpg", "sub/b.smile.jpg"]
    r = run(c, "-r", "--out-dir", c / "v2", "--suffix", "_v2", "--model", shift)  # another suffix: .smile still skipped
    assert r.exit_code == 0, r.stderr
    assert files(c / "v2") == ["a_v2.jpg", "sub/b_v2.jpg"]
    d = tmp_path / "d"
    put(jpeg, d / "a.jpg", d / "sub" / "b.jpg")
    r = run(d, "-r", "--out-dir", d / "same", "--suffix", "", "--model", shift)
    assert r.exit_code == 0 and files(d / "same") == ["a.jpg", "sub/b.jpg"]
    r = run(d, "-r", "--out-dir", d / "same", "--suffix", "", "--model", shift, "--json")  # its own results: left out
    assert r.exit_code == 0 and [Path(e["input"]).name for e in json.loads(r.stdout)["photos"]] == ["a.jpg", "b.jpg"]
    assert files(d / "same") == ["a.jpg", "sub/b.jpg"]


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_a_private_photos_result_stays_private(shift, jpeg: Path, tmp_path: Path):
    c, out = tmp_path / "c", tmp_path / "out"
    put(jpeg, c / "private.jpg", c / "shared.jpg", c / "ro.jpg")
    (c / "private.jpg").chmod(0o600)
    (c / "shared.jpg").chmod(0o644)
    (c / "ro.jpg").chmod(0o444)
    old = os.umask(0o022)
    try:
        r = run(c, "--out-dir", out, "--model", shift, "-j", "1")
        assert r.exit_code == 0, r.stderr
    finally:
        os.umask(old)
    mode = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()}
    assert mode == {"private.smile.jpg": 0o600, "shared.smile.jpg": 0o644, "ro.smile.jpg": 0o644}, mode


def test_the_pixel_limit_of_smile_detect_is_its_own_option_and_videos_keep_theirs(shift, jpeg: Path, tmp_path: Path,
                                                                                  monkeypatch):
    monkeypatch.setenv("SMILE_MAX_PIXELS", "1000")
    r = run("detect", jpeg, "--max-pixels", "1000000")  # (the option wins over the variable, as for smile)
    assert r.exit_code == 0 and ": face 0: box" in r.stdout, r.stderr
    r = run("detect", jpeg)
    assert r.exit_code == 5


def test_a_0_1_mask_file_and_an_out_dir_through_a_dangling_link_say_what_is_wrong(shift, jpeg: Path, tmp_path: Path):
    Image.fromarray(np.ones((512, 512), np.uint8)).save(tmp_path / "m01.png")
    r = run(jpeg, "--selection", tmp_path / "m01.png", "-o", tmp_path / "o.jpg", "--model", shift)
    assert r.exit_code == 2 and not (tmp_path / "o.jpg").exists()
    one_line_error(r, "m01.png (the --selection mask): its largest value is 1 of 255 (a 0/1 mask?)")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    r = run(jpeg, "--out-dir", tmp_path / "dangling" / "x", "--model", shift)
    assert r.exit_code == 2
    one_line_error(r, f"{tmp_path / 'dangling'} is a symbolic link to nothing")


def test_strength_0_is_not_counted_as_already_smiling(shift, jpeg: Path, tmp_path: Path):
    c = tmp_path / "c"
    put(jpeg, c / "a.jpg", c / "b.jpg")
    r = run(c, "--out-dir", tmp_path / "o", "--model", shift, "-s", "0", "-j", "1", "--json")
    assert json.loads(r.stdout)["summary"]["already_smiling"] == 0
    r = run(c, "--out-dir", tmp_path / "o2", "--model", shift, "-s", "0", "-j", "1")
    assert "2 photos: 0 smiled, 2 written with no face changed, 0 unchanged, 0 failed" in r.stderr


def test_a_home_of_no_user_is_a_name_like_any_other(jpeg: Path, tmp_path: Path, monkeypatch):
    """``~nouser/x.jpg`` is no file (as in a shell), not an internal error; a model SMILE_MODEL names is said
    to come from there."""
    r = run("~nosuchuser43/x.jpg")
    assert r.exit_code == 4
    one_line_error(r, "~nosuchuser43/x.jpg: no such file")
    put(jpeg, tmp_path / "a.jpg")
    r = run(tmp_path / "a.jpg", "--model", "~nosuchuser43/m.onnx")
    assert r.exit_code == 6
    one_line_error(r, "model file ~nosuchuser43/m.onnx does not exist")
    monkeypatch.setenv("SMILE_MODEL", str(tmp_path / "gone.onnx"))
    r = run(tmp_path / "a.jpg")
    assert r.exit_code == 6
    one_line_error(r, f"model file {tmp_path / 'gone.onnx'} does not exist (the model SMILE_MODEL names)")


def test_j_with_ray_is_said_to_be_ignored(jpeg: Path, tmp_path: Path):
    put(jpeg, tmp_path / "a.jpg")
    r = run(tmp_path / "a.jpg", "--ray", "local", "-j", "2", "-o", tmp_path / "o.jpg")
    assert "smile: note: -j applies without --ray; with it, so ignored (--ray-actors N sets the actors" in r.stderr


@pytest.mark.parametrize("name", ["x.jpg/", "new/x.jpg/"])
def test_an_output_ending_in_a_slash_is_refused_not_written_as_a_file(jpeg: Path, tmp_path: Path, name: str):
    put(jpeg, tmp_path / "in" / "a.jpg")
    (tmp_path / "new").mkdir()
    r = run(tmp_path / "in" / "a.jpg", "-o", f"{tmp_path}/{name}")
    # (before: pathlib dropped the slash and x.jpg was written as a file)
    assert r.exit_code == 2
    one_line_error(r, f"-o {tmp_path}/{name} ends in a slash, as a folder's name does; name the file without it, "
                      f"or use --out-dir {tmp_path}/{name} to write into that folder")
    assert files(tmp_path) == ["in/a.jpg"]


@pytest.mark.parametrize("name", ["x.mpg", "x.wmv", "x.mp4"])
def test_a_photo_given_a_video_name_lists_every_video_smile_reads(jpeg: Path, tmp_path: Path, name: str):
    put(jpeg, tmp_path / "a.jpg")
    r = run(tmp_path / "a.jpg", "-o", tmp_path / name)
    # (before, for .mpg and .wmv: "extension '.mpg' is not an output format", as for a name Smile never reads)
    assert r.exit_code == 2
    one_line_error(r, f"{name}: a video's name, but the input is read as a photo, whose result is a photo",
                   "videos Smile reads: .3gp, .asf, .avi, .dv, .flv, .m2ts, .m4v, .mkv, .mod, .mov, .mp4, .mpeg, .mpg, ")


def test_in_place_on_a_video_smile_does_not_write_says_in_place_is_for_photos(tmp_path: Path):
    (tmp_path / "dvd.mpg").write_bytes(b"\x00\x00\x01\xba" + bytes(2044))
    r = run(tmp_path / "dvd.mpg", "-s", "2", "--in-place")
    # (before: "extension '.mpg' is not a video format Smile can write ...; choose one with --ext", which --in-place refuses)
    assert r.exit_code == 2
    one_line_error(r, f"--in-place is for photos, {tmp_path / 'dvd.mpg'} is a video")
    assert files(tmp_path) == ["dvd.mpg"]
