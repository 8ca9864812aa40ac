"""The benchmarks run from a plain install: photos from samples/astronaut.jpg, missing optional
packages skip a part of ``all`` with a note, or refuse a part asked for by name in one line."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from benchmarks import __main__ as bench_main
from benchmarks import photos


def test_photos_need_no_optional_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage", None)  # importing it now fails
    a = photos.astronaut()
    assert a.shape == (512, 512, 3) and a.dtype == np.uint8 and not a.flags.writeable
    img = photos.make_photo(640, 480, 4)
    assert img.shape == (480, 640, 3)
    # four 216-px tiles of the portrait, two by two, centred in their cells, on a noisy background
    tiles = [img[y : y + 216, x : x + 216] for y in (12, 252) for x in (52, 372)]
    assert all(np.array_equal(tiles[0], t) for t in tiles[1:])
    assert abs(float(tiles[0].mean()) - float(a.mean())) < 3 and not np.array_equal(img[:12], tiles[0][:12])


def test_a_part_without_its_packages_is_skipped_in_all_and_refused_by_name(monkeypatch, capsys):
    real = bench_main.importlib.util.find_spec
    monkeypatch.setattr(bench_main.importlib.util, "find_spec", lambda name: None if name in ("skimage", "torch") else real(name))
    assert bench_main.missing("detector") == "`detector` needs skimage (pip install '.[test]')"
    assert bench_main.missing("pipeline") is None
    assert bench_main.main(["models"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: `models` needs torch (pip install '.[train]')"
    monkeypatch.setattr(bench_main, "run_part", lambda part, args: print(f"ran {part}") or 0)
    assert bench_main.main(["all"]) == 0
    out = capsys.readouterr().out
    assert "ran pipeline" in out and "skipped: `detector` needs skimage" in out and "skipped: `models` needs torch" in out


def test_batch_with_ray_is_refused_at_once_without_ray_and_counts_are_checked(monkeypatch, capsys):
    real = bench_main.importlib.util.find_spec
    monkeypatch.setattr(bench_main.importlib.util, "find_spec", lambda name: None if name == "ray" else real(name))
    monkeypatch.setattr(bench_main, "run_part", lambda part, args: pytest.fail("ran before refusing"))
    assert bench_main.main(["batch", "--photos", "4", "--ray"]) == 2
    assert capsys.readouterr().err.strip() == "error: `batch --ray` needs ray (pip install '.[ray]')"
    for argv, needle in ((["batch", "--photos", "1"], "--photos: 1 is below 2"), (["codecs", "--repeats", "0"], "--repeats: 0 is below 1"),
                         (["face", "--threads", "x"], "--threads: 'x' is not a whole number")):
        with pytest.raises(SystemExit) as exc:
            bench_main.main(argv)
        assert exc.value.code == 2 and needle in capsys.readouterr().err


def test_scratch_folders_go_when_the_process_ends(tmp_path):
    import subprocess

    code = "from benchmarks.photos import scratch_folder; f = scratch_folder('t-'); (f / 'x').write_text('1'); print(f)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=__import__("pathlib").Path(__file__).resolve().parents[1]).stdout.strip()
    assert out and not __import__("pathlib").Path(out).exists()


def test_the_per_face_benchmark_times_every_step_beside_its_baseline():
    pytest.importorskip("onnx")
    from benchmarks import face

    res = face.run(repeats=2)
    # chain2_pair: λ = 2 again, taking turns with the baseline composite's chain (the comparison's own pair)
    assert set(res["ms"]) == {k for k, _ in face.STEPS + face.CHAINS} | {"chain2_pair"}
    assert all(med > 0 and p90 >= med for med, p90 in res["ms"].values())
    assert res["prelu_nodes"] == 23 and res["side"] > 200
    table = face.to_markdown(res)
    assert "the engine's composite in the same turns" in table
    assert table.count("\n| ") == len(face.STEPS) + 4 + len(face.CHAINS)  # a row per step, two sums per strength, the chains
    assert "baseline face mesh" in table and "baseline composite" in table and f"Model {res['model']}" in table


def test_the_per_face_benchmark_times_another_smile_model_when_asked(tmp_path):
    """``python -m benchmarks face --against OTHER.onnx``: the other model at λ = 2 takes turns with
    the steps, in a row of its own named by its version."""
    pytest.importorskip("onnx")
    import shutil

    from benchmarks import face
    from smilecore.registry import resolve_model

    other = tmp_path / "other.onnx"
    shutil.copy(resolve_model(None), other)
    res = face.run(repeats=2, against=str(other))
    assert set(res["ms"]) == {k for k, _ in face.STEPS + face.CHAINS} | {"against", "chain2_pair"} and res["ms"]["against"][0] > 0
    table = face.to_markdown(res)
    assert table.count("\n| ") == len(face.STEPS) + 5 + len(face.CHAINS)
    assert f"| smile model {res['against']} (compared), λ = 2 |" in table


def test_the_formats_benchmark_writes_each_format_keeping_exif_and_icc(monkeypatch):
    pytest.importorskip("pillow_heif")
    from benchmarks import formats

    monkeypatch.setattr(formats, "SIZE", (400, 300))  # (the table itself is of 12 MP)
    rows = formats.run(repeats=1)
    ways = [r["way"] for r in rows]
    assert [w.split(",")[0].split(" at")[0] for w in ways] == ["JPEG", "JPEG", "AVIF", "HEIF", "HEIF"]
    for r in rows:
        assert r["meta"], r  # EXIF and ICC kept in every format
        assert r["kb"] > 1 and 30 < r["psnr"] < 80, r
    table = formats.to_markdown(rows)
    assert table.count("\n") == len(rows) + 1 and "smile's default" in table


def test_the_pipeline_benchmark_runs_one_small_case():
    from benchmarks.pipeline import _one_case

    row = _one_case("small", 640, 480, 1, repeats=1, threads=1)
    assert row["faces"] == row["found"] == 1 and all(row["ms"][s] > 0 for s in ("decode", "detect", "outline")), row
