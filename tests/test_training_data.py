"""Tests of the training data half: prepare, direction, teacher, classifier plumbing.

Only synthetic data and the public-domain NASA astronaut portrait are used.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from smilecore.align import template_points
from synthetic_face import face_without_mouth
from training import __main__ as training_main
from training.config import load_config
from training.direction import compute_direction, load_direction, save_asset
from training.prepare import save_npz, split_of
from training.donors import PATCH_H, PATCH_W, DonorBank, build_donor_bank
from training.landmarks68 import inner_gap
from training.teacher import Teacher


def _astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def _mean_shape() -> np.ndarray:
    """A plausible 68-point face in a 256 crop (built from simple curves)."""
    lm = face_without_mouth((74, 182))
    a = np.linspace(0, 2 * np.pi, 13)[:-1]
    lm[48:60] = np.stack([128 - 32 * np.cos(a), 190 - 12 * np.sin(a)], 1)
    b = np.linspace(0, 2 * np.pi, 9)[:-1]
    lm[60:68] = np.stack([128 - 22 * np.cos(b), 190 - 1 * np.sin(b)], 1)
    return lm


def _smile_delta() -> np.ndarray:
    d = np.zeros((68, 2))
    d[48] = [-6, -8]  # mouth corners out and up
    d[54] = [6, -8]
    d[49:54] = [0, -2]
    d[55:60] = [0, 2]
    return d


# ---------------------------------------------------------------- config / CLI


def test_config_paths_resolve_and_env_override(tmp_path, monkeypatch):
    cfg = load_config()
    assert cfg.paths.data_dir.is_absolute()
    monkeypatch.setenv("SMILE_TRAINING_CACHE", str(tmp_path / "c"))
    assert load_config().paths.cache_dir == tmp_path / "c"


def test_a_config_file_is_merged_over_config_toml(tmp_path):
    base = load_config()
    path = tmp_path / "c.toml"
    path.write_text('[teacher]\ndonor_pool = 7\n[train]\nema_decay = 0.5\n[train.gpu]\nlr = 0.5\n'
                    '[train.net]\nwidths = [8, 16]\n[[train.stages]]\nname = "only"\nweights = { l1 = 2.0 }\n')
    cfg = load_config(path)
    assert cfg.teacher.donor_pool == 7 and cfg.teacher.keep_donors == base.teacher.keep_donors
    assert cfg.train.ema_decay == 0.5 and cfg.train.total_steps == base.train.total_steps
    assert [s.name for s in cfg.train.stages] == ["only"] and cfg.train.stages[0].weights.l1 == 2.0
    assert cfg.train.net == {"widths": [8, 16]}  # [train.net] is replaced, not merged
    gpu = cfg.train_recipe(gpu=True)
    assert gpu.lr == 0.5 and gpu.ema_decay == 0.5 and gpu.batch_size == base.train_gpu.batch_size
    assert [s.name for s in gpu.stages] == [s.name for s in base.train_gpu.stages]
    assert cfg.donor_path == cfg.paths.cache_dir / "donors.npz"


@pytest.mark.parametrize("text,word", [("[teacher]\nlam_min = -2.0\n", "teacher.lam_min"), ("[nope]\nx = 1\n", "nope"),
                                       ("[[train.stages]]\nname = 'a'\nsize2 = 3\n", "size2")])
def test_unknown_config_keys_are_one_line_errors(tmp_path, capsys, text, word):
    path = tmp_path / "c.toml"
    path.write_text(text)
    assert training_main.main(["direction", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and word in err and len(err.strip().splitlines()) == 1


def test_unknown_step_exits_2(capsys):
    assert training_main.main(["bogus"]) == 2
    assert "unknown step" in capsys.readouterr().err


def test_missing_or_broken_config_exits_2(tmp_path, capsys):
    assert training_main.main(["direction", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml" in capsys.readouterr().err
    (tmp_path / "bad.toml").write_text("[paths\n")
    assert training_main.main(["pairs", "--config", str(tmp_path / "bad.toml")]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_prepare_without_data_exits_2(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[paths]\ndata_dir = "{tmp_path / "none"}"\ncache_dir = "{tmp_path / "cache"}"\n')
    assert training_main.main(["prepare", "--config", str(cfg)]) == 2
    assert "not found" in capsys.readouterr().out


# ---------------------------------------------------------------- prepare


def test_split_is_deterministic_and_roughly_proportional():
    people = [f"p{i}" for i in range(4000)]
    a = [split_of(p, 1, 0.1, 0.1) for p in people]
    assert a == [split_of(p, 1, 0.1, 0.1) for p in people]
    frac = {s: a.count(s) / len(a) for s in ("train", "val", "test")}
    assert 0.77 < frac["train"] < 0.83 and 0.08 < frac["val"] < 0.12 and 0.08 < frac["test"] < 0.12
    assert a != [split_of(p, 2, 0.1, 0.1) for p in people]


def test_save_npz_allows_a_file_field(tmp_path):
    save_npz(tmp_path / "x.npz", file=np.array(["a", "b"]), lm=np.ones((2, 5, 2), np.float32))
    with np.load(tmp_path / "x.npz") as z:
        assert list(z["file"]) == ["a", "b"] and z["lm"].shape == (2, 5, 2)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A prepared cache made from the astronaut (utkface, two expressions photos, a GENKI crop, a noise image)."""
    tmp_path = tmp_path_factory.mktemp("prepared")
    img = _astronaut()
    data = tmp_path / "data"
    (data / "utkface/images").mkdir(parents=True)
    (data / "expressions/images").mkdir(parents=True)
    for lab in ("0", "1"):
        (data / f"genki4k/datasets/train_folder/{lab}").mkdir(parents=True)
    bgr = img[:, :, ::-1]
    cv2.imwrite(str(data / "utkface/images/35_1_0_2017.jpg"), bgr)
    cv2.imwrite(str(data / "expressions/images/a_1.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2GRAY))
    cv2.imwrite(str(data / "expressions/images/a_2.jpg"), bgr[:, ::-1])
    (data / "expressions/labels.csv").write_text("file,person,emotion\na_1.jpg,Ann,neutral\na_2.jpg,Ann,happiness\n")
    face = cv2.resize(bgr[20:260, 100:340], (64, 64), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(data / "genki4k/datasets/train_folder/1/file1.jpg"), face)
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    cv2.imwrite(str(data / "genki4k/datasets/train_folder/0/file2.jpg"), noise)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[paths]\ndata_dir = "{data}"\ncache_dir = "{tmp_path / "cache"}"\n'
                   "[prepare]\nval_fraction = 0.0\ntest_fraction = 0.0\n[pairs]\nsize = 64\n")
    assert training_main.main(["prepare", "--config", str(cfg)]) == 0
    return tmp_path, cfg


def test_prepare_end_to_end_on_astronaut(prepared):
    tmp_path, cfg = prepared
    pdir = tmp_path / "cache/prepared"
    crops = np.load(pdir / "crops_256.npy")
    with np.load(pdir / "index.npz") as z:
        idx = {k: z[k] for k in z.files}
    assert crops.shape == (4, 256, 256, 3) and crops.dtype == np.uint8  # the noise image is dropped
    assert list(idx["source"]) == ["utkface", "expressions", "expressions", "genki4k"]
    assert list(idx["label"]) == [-1, 0, 1, 1]
    assert list(idx["gray"]) == [False, True, False, False]
    assert idx["split"][1] == idx["split"][2]  # same person, same split
    assert idx["lm5"].shape == (4, 5, 2) and idx["lm68"].shape == (4, 68, 2)
    # the five points land on the template; 68-point mouth sits below the nose
    assert np.abs(idx["lm5"] - template_points(256)).max() < 12
    assert (idx["lm68"][:, 48:68, 1].mean(1) > idx["lm5"][:, 4, 1]).all()
    # a grayscale source gives three equal channels
    assert (crops[1, ..., 0] == crops[1, ..., 2]).all()
    # resuming does not redo sources
    assert training_main.main(["prepare", "--config", str(cfg)]) == 0
    assert "cached, skipping" in (tmp_path / "cache/logs/prepare.log").read_text()


def test_pairs_step_builds_the_donor_bank_and_a_sheet(prepared):
    tmp_path, cfg = prepared
    assert training_main.main(["pairs", "--config", str(cfg)]) == 0
    assert (tmp_path / "cache/donors.npz").exists() and not list((tmp_path / "cache").glob("pairs_*.npz"))
    assert training_main.main(["pairs", "--config", str(cfg), "--sheet", "1"]) == 0
    assert cv2.imread(str(tmp_path / "cache/sheets/teacher.png")).shape == (64, 7 * 64, 3)


def test_direction_step_reports_too_few_people(prepared, capsys):
    _, cfg = prepared
    assert training_main.main(["direction", "--config", str(cfg), "--no-asset"]) == 2
    assert "at least 2 people" in capsys.readouterr().out


def test_classifier_step_runs_on_a_tiny_cache(prepared):
    pytest.importorskip("torch")
    tmp_path, cfg = prepared
    assert training_main.main(["classifier", "--config", str(cfg), "--epochs", "1"]) == 0
    with np.load(tmp_path / "cache/labels.npz") as z:
        assert z["smile_prob"].shape == (4,) and np.isnan(z["utk_smile_prob"][1:]).all()
        assert np.isfinite(z["utk_smile_prob"][0]) and set(np.unique(z["confident"])) <= {-1, 0, 1}
    assert (tmp_path / "cache/classifier.pt").exists()


# ---------------------------------------------------------------- direction


def test_direction_recovers_a_planted_smile(tmp_path):
    rng = np.random.default_rng(0)
    base, true = _mean_shape(), _smile_delta()
    lm, person, label = [], [], []
    for p in range(60):
        face = base + rng.normal(0, 3, base.shape)
        for k in range(2):
            lm.append(face + rng.normal(0, 1.0, base.shape))
            person.append(f"p{p}")
            label.append(0)
            lm.append(face + true * rng.uniform(0.5, 1.5) + rng.normal(0, 1.0, base.shape))
            person.append(f"p{p}")
            label.append(1)
    n = len(lm)
    index = {"lm68": np.array(lm, np.float32), "person": np.array(person), "label": np.array(label),
             "source": np.full(n, "expressions"), "split": np.full(n, "train")}
    res = compute_direction(index, ("train",), repeats=10)
    cos = (res["delta"].ravel() @ true.ravel()) / np.linalg.norm(res["delta"]) / np.linalg.norm(true)
    assert cos > 0.95
    assert res["split_half_cosine_mean"] > 0.8
    assert res["n_people"] == 60
    assert abs(res["person_lambda_mean"] - 1.0) < 1e-6  # λ=1 is the average change by definition
    save_asset(res, tmp_path / "d.json")
    delta, neutral = load_direction(tmp_path / "d.json")
    assert np.abs(delta - res["delta"]).max() < 1e-3 and neutral.shape == (68, 2)
    assert json.loads((tmp_path / "d.json").read_text())["size"] == 256


def test_direction_needs_people_with_both_labels():
    index = {"lm68": np.zeros((2, 68, 2), np.float32), "person": np.array(["a", "b"]), "label": np.array([0, 1]),
             "source": np.array(["expressions"] * 2), "split": np.array(["train"] * 2)}
    with pytest.raises(ValueError, match="at least 2 people"):
        compute_direction(index)


# ---------------------------------------------------------------- teacher


def _dot_image(size: int, points: np.ndarray) -> np.ndarray:
    img = np.full((size, size, 3), 40, np.uint8)
    yy, xx = np.mgrid[:size, :size]
    for x, y in points:
        img[(xx - x) ** 2 + (yy - y) ** 2 <= (size / 64) ** 2 * 4] = 255
    return img


@pytest.mark.parametrize("size", [64, 128, 256])
def test_teacher_lambda_zero_is_identity(size):
    t = Teacher(_smile_delta(), donors=None)
    lm = (_mean_shape() + 0.5) * size / 256 - 0.5
    crop = np.random.default_rng(1).integers(0, 255, (size, size, 3), dtype=np.uint8)
    p = t.synthesize(crop, lm, 0.0)
    assert (p.target == crop).all() and not p.flow.any() and not p.mask.any()
    assert p.flow.shape == (2, size, size) and p.flow.dtype == np.float32
    assert p.mask.shape == (size, size) and p.mask.dtype == np.float32


@pytest.mark.parametrize("size", [128, 256])
def test_teacher_moves_mouth_corners_and_pins_border(size):
    t = Teacher(_smile_delta(), donors=None)
    lm = (_mean_shape() + 0.5) * size / 256 - 0.5
    corners = lm[[48, 54]]
    crop = _dot_image(size, corners)
    p = t.synthesize(crop, lm, 2.0)
    assert p.target.shape == crop.shape and p.target.dtype == np.uint8
    expect = corners + 2.0 * _smile_delta()[[48, 54]] * size / 256
    for ex, ey in expect:
        win = p.target[..., 0].astype(float)
        yy, xx = np.mgrid[:size, :size]
        near = (np.abs(xx - ex) < size / 16) & (np.abs(yy - ey) < size / 16)
        w = np.where(near, np.maximum(win - 40, 0), 0)
        cx, cy = (w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()
        assert np.hypot(cx - ex, cy - ey) < 0.03 * size  # the dot followed its landmark
    # backward-flow convention: target(p) = crop(p + flow(p))
    y, x = int(expect[0, 1]), int(expect[0, 0])
    sx, sy = x + p.flow[0, y, x], y + p.flow[1, y, x]
    assert np.hypot(sx - corners[0, 0], sy - corners[0, 1]) < 0.03 * size
    # border and brows stay put
    assert np.abs(p.flow[:, [0, -1], :]).max() < 0.05 * size / 16 + 0.3
    assert np.abs(p.flow[:, :, [0, -1]]).max() < 0.05 * size / 16 + 0.3
    bx, by = lm[19].astype(int)
    assert np.abs(p.flow[:, by, bx]).max() < 0.5
    assert not p.mask.any()


def test_teacher_default_direction_loads():
    delta, _ = load_direction()
    assert delta.shape == (68, 2) and np.isfinite(delta).all()
    assert np.linalg.norm(delta[[48, 54]], axis=1).min() > 3  # the mouth corners move
    Teacher(donors=None)


def _open_delta() -> np.ndarray:
    d = _smile_delta()
    d[[61, 62, 63]] = [0, -6]  # upper inner lip rises: the mouth opens
    d[[60, 64]] = d[[48, 54]]
    return d


def _donor_bank() -> DonorBank:
    """One open mouth whose interior is white (teeth) on a dark-red cavity."""
    lm = _mean_shape()
    lm[[61, 62, 63], 1] -= 14
    crop = np.full((256, 256, 3), (180, 120, 100), np.uint8)  # skin
    cv2.fillPoly(crop, [np.round(lm[48:60]).astype(np.int32)], (150, 40, 50))  # lips
    cv2.fillPoly(crop, [np.round(lm[60:68]).astype(np.int32)], (245, 245, 240))  # teeth
    bank = build_donor_bank(crop[None], lm[None].astype(np.float32), np.array([False]), np.array([0]))
    assert len(bank) == 1 and bank.patches.shape == (1, PATCH_H, PATCH_W, 3)
    return bank


@pytest.mark.parametrize("size", [128, 256])
def test_teacher_pastes_teeth_where_the_mouth_opens(size, tmp_path):
    bank = _donor_bank()
    bank.save(tmp_path / "d.npz")
    t = Teacher(_open_delta(), donors=tmp_path / "d.npz")
    lm = (_mean_shape() + 0.5) * size / 256 - 0.5
    crop = np.full((size, size, 3), (170, 110, 90), np.uint8)
    cv2.fillPoly(crop, [np.round(lm[48:60]).astype(np.int32)], (140, 50, 60))
    small = t.synthesize(crop, lm, 0.3, np.random.default_rng(0))
    assert not small.mask.any()  # barely opened: warp only
    p = t.synthesize(crop, lm, 3.0, np.random.default_rng(0))
    assert inner_gap(p.landmarks) > inner_gap(lm) + 0.05 * size
    assert 0.0 <= p.mask.min() and p.mask.max() <= 1.0 and p.mask.max() > 0.9
    inside = np.zeros((size, size), np.uint8)
    cv2.fillPoly(inside, [np.round(p.landmarks[60:68]).astype(np.int32)], 1)
    assert p.mask[inside > 0].mean() > 0.6
    assert p.mask[: size // 2].max() == 0 and p.mask[:, : size // 8].max() == 0  # nowhere else
    cx, cy = np.round(p.landmarks[60:68].mean(0)).astype(int)
    assert p.target[cy, cx].min() > 200 and p.target[inside > 0].mean() > 160  # teeth, not lips (≈ 80)
    # outside the mask the target is exactly the warp
    px, py = np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32))
    warp = cv2.remap(crop, px + p.flow[0], py + p.flow[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    out = p.mask == 0
    assert (p.target[out] == warp[out]).all()
    # grayscale subjects get gray teeth
    g = t.synthesize(np.repeat(crop[..., :1], 3, axis=2), lm, 3.0, np.random.default_rng(0))
    assert (g.target[..., 0] == g.target[..., 2]).all()


def test_donor_bank_best_keeps_sharp_visible_teeth(tmp_path):
    good = _donor_bank()
    # the same mouth with dim, blurred "teeth" (lips-coloured cavity) and a grey copy
    dim = good.patches[0].copy()
    inner = np.zeros(dim.shape[:2], np.uint8)
    cv2.fillPoly(inner, [np.round(good.lips[0, 12:20] * 16).astype(np.int32)], 1, shift=4)
    dim[inner > 0] = (120, 60, 60)
    blurry = cv2.GaussianBlur(good.patches[0], (0, 0), 3)
    grey = np.repeat(good.patches[0].mean(2, keepdims=True), 3, axis=2).astype(np.uint8)
    bank = DonorBank(np.stack([dim, blurry, good.patches[0], grey]), np.repeat(good.lips, 4, axis=0),
                     np.array([False, False, False, True]))
    q = bank.quality()
    assert q[2] > q[1] > q[0] and q[0] == 0.0  # sharp teeth > blurred teeth > no teeth
    best = bank.best(2)
    assert len(best) == 2 and not best.gray.any()  # colour donors only
    assert np.array_equal(best.patches[1], good.patches[0]) and np.array_equal(best.patches[0], blurry)
    assert len(bank.best(10)) == 3
    bank.save(tmp_path / "d.npz")
    t = Teacher(_open_delta(), donors=tmp_path / "d.npz", keep_donors=1, donor_pool=1)
    assert len(t.donors) == 1 and t.donor_pool == 1 and np.array_equal(t.donors.patches[0], good.patches[0])


@pytest.mark.parametrize("smiler_p,expected", [(0.0, 10), (1.0, 200)])
def test_teacher_pairs_draw_smiling_inputs_with_smiler_p(smiler_p, expected):
    torch = pytest.importorskip("torch")
    from training.dataset import SampleConfig, TeacherPairs

    crops = np.concatenate([np.full((2, 256, 256, 3), 10, np.uint8), np.full((2, 256, 256, 3), 200, np.uint8)])
    lm = np.repeat(_mean_shape()[None].astype(np.float32), 4, axis=0)
    cfg = SampleConfig(size=64, lam_min=0.0, lam_max=0.0, flip=False, gray_p=0.0, jitter=0.0, smiler_p=smiler_p)
    ds = TeacherPairs(crops, lm, np.array([0, 1]), np.array([2, 3]), cfg, teacher=Teacher(_smile_delta(), donors=None), seed=1)
    faces = torch.stack([ds[0]["face"] for _ in range(12)])
    assert torch.allclose((faces + 1) * 127.5, torch.full_like(faces, float(expected)), atol=0.6)


def test_teacher_rejects_bad_crop():
    with pytest.raises(ValueError, match="uint8"):
        Teacher(_smile_delta(), donors=None).synthesize(np.zeros((10, 12, 3), np.float32), _mean_shape(), 1.0)


# ---------------------------------------------------------------- classifier


def test_classifier_forward_shapes_and_probability(tmp_path):
    torch = pytest.importorskip("torch")
    from training.classifier import SmileClassifier, load_classifier, smile_probability

    m = SmileClassifier().eval()
    for s in (48, 64, 96):
        assert m(torch.zeros(2, 3, s, s)).shape == (2,)
    crops = np.random.default_rng(0).integers(0, 255, (3, 256, 256, 3), dtype=np.uint8)
    p = smile_probability(m, crops)
    assert p.shape == (3,) and p.dtype == np.float32 and ((p >= 0) & (p <= 1)).all()
    torch.save({"state": m.state_dict(), "widths": [16, 32, 64, 128], "input_size": 48}, tmp_path / "c.pt")
    m2 = load_classifier(tmp_path / "c.pt")
    assert not m2.training
    assert np.allclose(smile_probability(m2, crops), p, atol=1e-6)
    with pytest.raises(FileNotFoundError, match="python -m training classifier"):
        load_classifier(tmp_path / "missing.pt")
