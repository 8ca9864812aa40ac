"""``python -m training pack`` / ``unpack`` / ``bundle`` / ``restore`` and ``tune``'s GPU path, on the
CPU: the faces a tune run draws from travel to a lent machine as their source photos and come back
there as the very crops ``prepare`` made; the run's snapshots come back as block means that
export like the run's own."""
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
from PIL import Image  # noqa: E402

from training import __main__ as training_main  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "astronaut.jpg"
S = 256


def _prepared(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A data folder of four photos made from the sample, a prepared cache of their crops as
    ``prepare`` makes them (two neutral, two smiling, train split), classifier labels and a
    classifier file; returns (config path, crops)."""
    from smilecore.align import extract_crop
    from training.prepare import find_face, read_rgb, save_npz

    folder = tmp_path / "data" / "expressions" / "images"
    folder.mkdir(parents=True)
    img = Image.open(SAMPLE).convert("RGB")
    crops, lm5, lm68, px, files = [], [], [], [], []
    for i, size in enumerate((512, 448, 384, 480)):
        name = f"expressions/images/p{i}.jpg"
        (img.resize((size, size)) if i % 2 == 0 else img.resize((size, size)).transpose(Image.FLIP_LEFT_RIGHT)).save(tmp_path / "data" / name, quality=92)
        rgb, _ = read_rgb(tmp_path / "data" / name)
        al, l5, l68, side = find_face(rgb, S, 24)
        crops.append(extract_crop(rgb, al))
        lm5.append(l5)
        lm68.append(l68)
        px.append(side)
        files.append(name)
    n = len(files)
    pdir = tmp_path / "cache" / "prepared"
    pdir.mkdir(parents=True)
    crops = np.stack(crops)
    np.save(pdir / f"crops_{S}.npy", crops)
    save_npz(pdir / "index.npz", source=np.full(n, "expressions"), file=np.array(files), person=np.array([f"p{i}" for i in range(n)]),
             label=np.array([0, 1, 0, 1], np.int8), split=np.full(n, "train"), lm5=np.array(lm5, np.float32),
             lm68=np.array(lm68, np.float32), gray=np.zeros(n, bool), face_px=np.array(px, np.int16), age=np.full(n, -1, np.int16))
    np.savez(tmp_path / "cache" / "labels.npz", confident=np.array([0, 1, 0, 1], np.int8), smile_prob=np.array([0.05, 0.95, 0.04, 0.97]))
    (tmp_path / "cache" / "classifier.pt").write_bytes(b"classifier weights")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[paths]\ndata_dir = "{tmp_path / "data"}"\ncache_dir = "{tmp_path / "cache"}"\n')
    return cfg, crops


def _unpack_config(tmp_path: Path, name: str) -> Path:
    cfg = tmp_path / f"{name}.toml"
    cfg.write_text(f'[paths]\ndata_dir = "{tmp_path / "nowhere"}"\ncache_dir = "{tmp_path / name}"\n')
    return cfg


def test_a_pack_holds_the_photos_and_unpacks_to_the_same_crops(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SMILE_TRAINING_CACHE", raising=False)
    cfg, crops = _prepared(tmp_path)
    assert training_main.main(["pack", "--config", str(cfg), "--out", str(tmp_path / "pack")]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == {"rows": 4, "dropped": 0, "photos_mb": pytest.approx(
        sum(p.stat().st_size for p in (tmp_path / "data").rglob("*.jpg")) / 2**20, abs=0.06)}
    photos = sorted(p.name for p in (tmp_path / "pack" / "photos").rglob("*.jpg"))
    assert photos == ["p0.jpg", "p1.jpg", "p2.jpg", "p3.jpg"]  # the photos as they are, not their crops
    assert (tmp_path / "pack" / "photos" / "expressions" / "images" / "p1.jpg").read_bytes() == \
        (tmp_path / "data" / "expressions" / "images" / "p1.jpg").read_bytes()
    other = _unpack_config(tmp_path, "there")  # the lent machine: no data folder
    assert training_main.main(["unpack", "--config", str(other), str(tmp_path / "pack")]) == 0
    assert json.loads(capsys.readouterr().out.strip()) == {"rows": 4, "identical": 4}
    from training.config import load_config
    from training.prepare import load_prepared

    got, index = load_prepared(load_config(str(other)))
    np.testing.assert_array_equal(got, crops)
    _, want = load_prepared(load_config(str(cfg)))
    assert set(index) == set(want)
    for k in want:
        np.testing.assert_array_equal(index[k], want[k])
    with np.load(tmp_path / "there" / "labels.npz") as z:
        np.testing.assert_array_equal(z["confident"], [0, 1, 0, 1])
    assert (tmp_path / "there" / "classifier.pt").read_bytes() == b"classifier weights"


def test_a_row_whose_photo_no_longer_gives_its_crop_stays_behind(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SMILE_TRAINING_CACHE", raising=False)
    cfg, _ = _prepared(tmp_path)
    Image.open(SAMPLE).convert("RGB").rotate(8).save(tmp_path / "data" / "expressions" / "images" / "p2.jpg")
    assert training_main.main(["pack", "--config", str(cfg), "--out", str(tmp_path / "pack")]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["rows"] == 3
    assert not (tmp_path / "pack" / "photos" / "expressions" / "images" / "p2.jpg").exists()


def test_a_size_limit_leaves_rows_out(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SMILE_TRAINING_CACHE", raising=False)
    cfg, _ = _prepared(tmp_path)
    one = max(p.stat().st_size for p in (tmp_path / "data").rglob("*.jpg")) / 2**20
    assert training_main.main(["pack", "--config", str(cfg), "--out", str(tmp_path / "pack"), "--max-mb", f"{2.2 * one:.4f}"]) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0 < got["rows"] < 4 and got["photos_mb"] <= 2.2 * one + 1e-3


def test_unpack_refuses_a_folder_that_is_not_a_pack(tmp_path):
    with pytest.raises(SystemExit, match="not a pack"):
        training_main.main(["unpack", str(tmp_path)])


def test_prefetched_batches_come_in_order_and_the_thread_stops(monkeypatch):
    from training.tune import prefetched

    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: self)  # no GPU here
    drawn = iter(range(1, 100))

    def draw():
        k = next(drawn)
        return torch.full((3,), k), torch.zeros(3)

    import threading

    before = set(threading.enumerate())
    g = prefetched(draw)
    assert [int(next(g)[0][0]) for _ in range(5)] == [1, 2, 3, 4, 5]
    assert len(set(threading.enumerate()) - before) == 1  # its one thread
    g.close()
    assert not set(threading.enumerate()) - before  # gone


def test_the_gpu_path_makes_the_same_input_from_uint8_crops():
    """The sampler's uint8 crops, made into the network's input where they land (the GPU), are
    the CPU path's input to the bit, and come in the same order from the same seed."""
    from test_training_data import _mean_shape
    from training.nets import network_input
    from training.tune import Sampler, device_input

    rng = np.random.default_rng(0)
    n = 12
    crops = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    index = {"source": np.full(n, "expressions"), "label": np.array([0, 1] * 6, np.int8), "split": np.full(n, "train"),
             "gray": np.zeros(n, bool), "face_px": np.full(n, 200),
             "lm68": np.repeat(_mean_shape()[None].astype(np.float32), n, axis=0)}
    a, b = Sampler(crops, index, None, 3), Sampler(crops, index, None, 3)
    for _ in range(3):
        want = a.batch(4)
        got = [device_input(torch.from_numpy(x)) for x in b.raw(4)]
        for w, g in zip(want, got):
            assert torch.equal(w, g) and w.stride() == g.stride()
    assert not torch.equal(want[0], a.batch(4)[0])  # the batches do change
    assert np.array_equal(network_input(crops[:1]).numpy(), device_input(torch.from_numpy(crops[:1])).numpy())


def test_snapshots_bundle_into_block_means_and_restore_for_export(tmp_path, capsys):
    from smilecore.registry import resolve_model
    from test_training_tune import _tiny_cache

    model = resolve_model(None)
    cfg, _ = _tiny_cache(tmp_path, 'parts = ["mouth"]\ndisc_window = [0.3, 0.62, 0.7, 0.84]\n'
                                   "disc_size = [28, 51]\nneg_share = 0.0\n")
    assert training_main.main(["tune", "--config", str(cfg), "--model", str(model), "--name", "m", "--steps", "8"]) == 0
    run = tmp_path / "cache" / "tune" / "m"
    capsys.readouterr()
    assert training_main.main(["bundle", str(run), str(tmp_path / "b"), "--blocks", "2", "--max-mb", "1.5"]) == 0
    files = capsys.readouterr().out.split()
    assert len(files) == 2  # one block mean of the mouth network (1.1 MiB in float16) a file
    back = tmp_path / "cache" / "tune" / "back"
    assert training_main.main(["restore", *files, "--run", str(back), "--model", str(model)]) == 0
    assert json.loads(capsys.readouterr().out) == [4, 8]  # snapshots every 2 steps, two to a block
    snaps = [torch.load(run / f"step-{k:06d}.pt", weights_only=False) for k in (2, 4)]
    got = torch.load(back / "step-000004.pt", weights_only=False)
    for k, v in got["mouth"].items():
        if v.is_floating_point():
            want = (snaps[0]["mouth"][k] + snaps[1]["mouth"][k]) / 2
            torch.testing.assert_close(v, want, atol=2e-3, rtol=2e-3)  # float16 in transit
    from training.tune import MergedModel

    a, b = MergedModel(model).net.state_dict(), MergedModel(model).net.state_dict()
    in_file = [k for k in a if torch.equal(a[k], b[k])]  # the heads the merged graph drops are drawn afresh
    assert len(in_file) > 300
    for k in in_file:  # the smile network did not learn: the model's own comes back
        torch.testing.assert_close(got["net"][k], snaps[0]["net"][k])
    out = tmp_path / "back.onnx"
    assert training_main.main(["tune", "--config", str(cfg), "--name", "back", "--average", "0", "--export", str(out),
                               "--version", "9.1.0"]) == 0
    assert out.is_file() and "mean of 2 snapshots" in out.with_suffix(".md").read_text()
    with pytest.raises(SystemExit, match="not the model"):
        training_main.main(["restore", *files, "--run", str(back), "--model", str(out)])


def test_a_mouth_pack_holds_the_open_mouths_mouth_learns_from(tmp_path, capsys, monkeypatch):
    """``--rows mouth``: the open mouths of the train and val splits that ``mouth`` would use, never a test face."""
    monkeypatch.delenv("SMILE_TRAINING_CACHE", raising=False)
    from training.config import load_config
    from training.mouth import open_mouths
    from training.pack import mouth_rows
    from training.prepare import load_prepared, save_npz

    cfg, crops = _prepared(tmp_path)
    pdir = tmp_path / "cache" / "prepared"
    _, index = load_prepared(load_config(str(cfg)))
    index["split"] = np.array(["train", "val", "test", "train"])
    save_npz(pdir / "index.npz", **index)
    cfg.write_text(cfg.read_text() + "[mouth]\nmin_open = 0.0\nmin_teeth = 0.0\nmin_face_px = 0\n")  # every mouth counts as open
    c = load_config(str(cfg))
    assert list(mouth_rows(crops, index, c)) == [0, 1, 3]
    strict = load_config(None).mouth  # with the real thresholds it is what open_mouths keeps, split by split
    c2 = tmp_path / "c2.toml"
    c2.write_text(cfg.read_text().split("[mouth]")[0])
    want = sorted(np.concatenate([open_mouths(crops, index, s, strict.min_open, strict.min_face_px, strict.min_teeth)
                                  for s in ("train", "val")]))
    assert list(mouth_rows(crops, index, load_config(str(c2)))) == want
    assert training_main.main(["pack", "--config", str(cfg), "--out", str(tmp_path / "pack"), "--rows", "mouth"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["rows"] == 3
    with np.load(tmp_path / "pack" / "pack.npz") as z:
        assert list(z["index.split"]) == ["train", "val", "train"]


def test_pack_replaces_an_earlier_pack_and_refuses_any_other_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SMILE_TRAINING_CACHE", raising=False)
    cfg, _ = _prepared(tmp_path)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(SystemExit, match="other things in it"):
        training_main.main(["pack", "--config", str(cfg), "--out", str(mine)])
    assert (mine / "notes.txt").read_text() == "keep me"
    for _ in range(2):  # the second run replaces the first pack
        assert training_main.main(["pack", "--config", str(cfg), "--out", str(tmp_path / "pack")]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["rows"] == 4
