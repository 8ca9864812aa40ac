"""A tiny end-to-end training run: a first run without the TeethAtlas, then ``--continue-from`` its
stage checkpoint into a run whose ``atlas`` stage adds it, then export (skipped without torch)."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")

from test_training_data import _mean_shape  # noqa: E402
from training import __main__ as training_main  # noqa: E402

STAGE = """
[[train.stages]]
name = "{name}"
{until}
size = 64
lam_min = {lo}
lam_max = {hi}
{extra}
weights = {{ l1 = 10.0, mask = 1.0, rgb = 2.0{more} }}
"""


def _config(tmp_path, atlas: bool, total: int, stages: str):
    path = tmp_path / f"c{int(atlas)}.toml"
    path.write_text(
        f'[paths]\ndata_dir = "{tmp_path / "data"}"\ncache_dir = "{tmp_path / "cache"}"\n'
        f'[train]\narch = "mobile_unet"\nrun_name = "first"\nthreads = 1\nnum_workers = 0\nbatch_size = 2\n'
        f"total_steps = {total}\nval_every = 2\nlog_every = 1\nval_faces = 2\nval_lams = [1.0, 3.0]\ncheckpoint_minutes = 100\n"
        f"[train.net]\nwidths = [8, 16, 32]\nteeth_atlas = {'true' if atlas else 'false'}\n" + stages)
    return path


def _cache(tmp_path) -> None:
    """Eight flat faces with drawn lips and the mean 68-point shape: 6 train (2 smiling), 2 val."""
    n = 8
    lm = _mean_shape().astype(np.float32)
    crops = np.empty((n, 256, 256, 3), np.uint8)
    for i in range(n):
        crops[i] = (160 + 5 * i, 110, 90)
        cv2.fillPoly(crops[i], [np.round(lm[48:60]).astype(np.int32)], (140, 50, 60))
    pdir = tmp_path / "cache" / "prepared"
    pdir.mkdir(parents=True)
    np.save(pdir / "crops_256.npy", crops)
    np.savez(pdir / "index.npz", source=np.full(n, "expressions"),
             person=np.array([f"p{i}" for i in range(n)]), label=np.array([0, 0, 0, 0, 1, 1, 0, 0], np.int8),
             age=np.full(n, 30, np.int16), lm68=np.repeat(lm[None], n, axis=0), gray=np.zeros(n, bool),
             split=np.array(["train"] * 6 + ["val"] * 2))


def _events(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def test_continue_from_a_run_without_the_atlas_into_an_atlas_stage(tmp_path):
    from training.export import load_generator

    _cache(tmp_path)
    mild = STAGE.format(name="mild", until="until_step = 2", lo=0.0, hi=1.5, extra="", more="")
    first = _config(tmp_path, False, 2, mild)
    assert training_main.main(["train", "--config", str(first)]) == 0
    runs = tmp_path / "cache" / "runs"
    assert (runs / "first" / "stage-mild.pt").exists()

    atlas = STAGE.format(name="atlas", until="until = 1.0", lo=2.0, hi=3.0, extra="atlas = true", more=", uv = 5.0, adv = 0.02")
    second = _config(tmp_path, True, 4, mild + atlas)
    assert training_main.main(["train", "--config", str(second), "--run", "second",
                               "--continue-from", str(runs / "first" / "stage-mild.pt")]) == 0
    ev = _events(runs / "second")
    cont = next(e for e in ev if e.get("event") == "continued")
    assert cont["step"] == 2 and cont["new_heads"] == ["heads.atlas.shade", "heads.atlas.uv"]
    assert cont["disc_from"].endswith("first/last.pt")
    stages = [e["stage"] for e in ev if e.get("event") == "stage"]
    assert stages == ["atlas"]  # the mild stage was the first run's
    steps = [e for e in ev if "uv" in e and e.get("event") is None]
    assert [e["step"] for e in steps] == [3, 4] and all(np.isfinite(e["uv"]) and e["uv"] > 0 for e in steps)
    val = [e for e in ev if e.get("event") == "val"]
    assert val and val[-1]["step"] == 4 and val[-1]["uv"] > 0
    ck = torch.load(runs / "second" / "stage-atlas.pt", map_location="cpu", weights_only=False)
    assert ck["atlas"] is True and ck["step"] == 4
    net, _ = load_generator(runs / "second" / "stage-atlas.pt", 128)
    assert net.net.heads.use_atlas is True  # trained at 64², served at 128²
    rgb, mask, flow = net(torch.zeros(1, 3, 128, 128), torch.tensor([[0.0]]))
    assert rgb.shape == (1, 3, 128, 128) and not mask.any() and not flow.any()


def test_an_atlas_stage_without_the_atlas_heads_is_refused(tmp_path):
    _cache(tmp_path)
    atlas = STAGE.format(name="atlas", until="until = 1.0", lo=2.0, hi=3.0, extra="atlas = true", more=", uv = 5.0")
    cfg = _config(tmp_path, False, 2, atlas)
    with pytest.raises(ValueError, match="teeth_atlas = true"):
        training_main.main(["train", "--config", str(cfg)])
