"""The drawn mouth (training.teeth), the teacher's picture coordinates and the TeethAtlas RGB path."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")

from training import nets  # noqa: E402
from training.losses import composite, uv_loss  # noqa: E402
from training.donors import PATCH_H, PATCH_W, teeth_fraction  # noqa: E402
from training.landmarks68 import inner_gap  # noqa: E402
from training.teacher import Teacher  # noqa: E402
from training.teeth import MOUTH_LIPS, drawn_bank, hanging_lips, render_mouth  # noqa: E402

from test_training_data import _mean_shape, _open_delta  # noqa: E402


def test_drawn_mouth_shows_separate_teeth():
    img = render_mouth()
    assert img.shape == (PATCH_H, PATCH_W, 3) and img.dtype == np.uint8
    assert np.array_equal(img, render_mouth.__wrapped__())  # deterministic
    # most of the opening is teeth by the donors' own measure
    assert teeth_fraction(img, MOUTH_LIPS) > 0.5
    # a row through the upper teeth: bright teeth separated by darker gaps
    y = int(round(MOUTH_LIPS[14, 1] + 0.35 * (MOUTH_LIPS[18, 1] - MOUTH_LIPS[14, 1])))
    lum = img[y, 40:89].astype(np.float32).mean(1)
    dips = [i for i in range(1, len(lum) - 1) if lum[i] < lum[i - 1] and lum[i] <= lum[i + 1] and lum[i] < lum.max() - 25]
    assert len(dips) >= 4, lum.round()
    assert lum.max() > 200
    # outside the inner lips the picture is lip-coloured, not teeth
    assert img[5, 5].tolist() == img[90, 120].tolist() and img[5, 5, 0] > img[5, 5, 1] + 50


def test_hanging_lips_keep_the_teeth_their_size():
    target = MOUTH_LIPS * 0.5 + np.array([10.0, 20.0], np.float32)  # the picture's own mouth, half size, elsewhere
    assert np.allclose(hanging_lips(MOUTH_LIPS, target), MOUTH_LIPS, atol=1e-4)
    wide = target.copy()
    wide[[17, 18, 19], 1] += 5.0  # the lower inner lip drops 5 px (10 px at the picture's scale)
    got = hanging_lips(MOUTH_LIPS, wide)
    assert np.allclose(got[:17], MOUTH_LIPS[:17], atol=1e-4)  # upper lip, corners, outer lower lip stay
    assert np.allclose(got[17:, 1], MOUTH_LIPS[17:, 1] + 10.0, atol=1e-4)
    bank = drawn_bank()
    assert bank.hanging and bank.ring_lum is not None and len(bank) == 1


def test_a_wider_opening_shows_more_of_the_drawn_mouth_instead_of_stretching_it():
    size = 256
    delta = _open_delta()
    delta[[65, 66, 67]] = [0, 6]  # the lower lip drops too
    delta[[55, 56, 57, 58, 59], 1] += 6
    lm = _mean_shape()
    crop = np.full((size, size, 3), (170, 110, 90), np.uint8)
    cv2.fillPoly(crop, [np.round(lm[48:60]).astype(np.int32)], (140, 50, 60))

    def deepest(teacher: Teacher, lam: float) -> tuple[float, float]:
        """(lowest picture row sampled in the mouth's centre column, the target's opening)"""
        p = teacher.synthesize(crop, lm, lam, np.random.default_rng(0))
        cx = int(round(p.landmarks[62, 0]))
        on = p.mask[:, cx] > 0.5
        return float(((p.uv[1, on, cx] + 1) / 2 * PATCH_H - 0.5).max()), inner_gap(p.landmarks)

    hanging = Teacher(delta, donors="drawn")
    (low_a, gap_a), (low_b, gap_b) = deepest(hanging, 1.5), deepest(hanging, 3.0)
    assert gap_b > gap_a + 10
    assert low_b > low_a + 5  # further down the picture: the dark mouth below the teeth
    assert low_a > MOUTH_LIPS[18, 1] - 2  # already past the picture's own lower lip
    stretched = Teacher(delta, donors="drawn")
    stretched.donors.hanging = False  # a real donor's mouth is stretched onto the target instead
    assert abs(deepest(stretched, 3.0)[0] - deepest(stretched, 1.5)[0]) < 1.0


def test_teacher_reports_where_it_sampled_the_drawn_mouth():
    size = 128
    t = Teacher(_open_delta(), donors="drawn")
    assert len(t.donors) == 1
    lm = (_mean_shape() + 0.5) * size / 256 - 0.5
    crop = np.full((size, size, 3), (170, 110, 90), np.uint8)
    cv2.fillPoly(crop, [np.round(lm[48:60]).astype(np.int32)], (140, 50, 60))
    p = t.synthesize(crop, lm, 3.0, np.random.default_rng(0))
    assert inner_gap(p.landmarks) > inner_gap(lm)
    assert p.uv.shape == (2, size, size) and p.uv.dtype == np.float32
    on = p.mask > 0
    assert on.sum() > 30 and not p.uv[:, ~on].any()  # coordinates only under the mask
    assert np.abs(p.uv[:, on]).max() <= 1.0
    # sampling the picture at those coordinates gives the target (up to the one brightness gain)
    img = torch.from_numpy(render_mouth()).permute(2, 0, 1)[None].float()
    grid = torch.from_numpy(p.uv).permute(1, 2, 0)[None]
    sample = torch.nn.functional.grid_sample(img, grid, align_corners=False)[0].permute(1, 2, 0).numpy()
    full = p.mask > 0.99
    assert full.sum() > 10
    ratio = p.target[full].astype(np.float32).mean(1) / np.maximum(sample[full].mean(1), 1.0)
    assert 0.8 < np.median(ratio) < 1.2 and np.percentile(np.abs(ratio - np.median(ratio)), 90) < 0.05
    # λ = 0: no mask, no coordinates
    p0 = t.synthesize(crop, lm, 0.0)
    assert not p0.uv.any() and not p0.mask.any()


def test_uv_loss_counts_only_the_teachers_mouth():
    t_uv = torch.zeros(1, 2, 16, 16)
    t_mask = torch.zeros(1, 1, 16, 16)
    t_mask[..., 4:8, 4:12] = 1.0
    uv = torch.zeros(1, 2, 16, 16)
    uv[..., :2, :] = 0.7  # wrong only where the teacher has no mouth
    assert float(uv_loss(uv, t_uv, t_mask)) == 0.0
    uv[:, 0, 4:8, 4:12] = 0.25
    assert float(uv_loss(uv, t_uv, t_mask)) == pytest.approx(0.25)
    assert float(uv_loss(uv, t_uv, torch.zeros_like(t_mask))) == 0.0


def test_atlas_draws_the_picture_where_it_is_told_and_keeps_lambda_zero():
    net = nets.build_net("mobile_unet", teeth_atlas=True).eval()
    heads = net.heads
    atlas = heads.atlas
    assert "heads.atlas.image" not in net.state_dict()  # rebuilt from code, never from a checkpoint
    # identity coordinates, neutral shading: the picture itself comes back
    ys, xs = torch.meshgrid(torch.linspace(-1 + 1 / PATCH_H, 1 - 1 / PATCH_H, PATCH_H),
                            torch.linspace(-1 + 1 / PATCH_W, 1 - 1 / PATCH_W, PATCH_W), indexing="ij")
    uv = torch.stack([xs, ys])[None]
    shade = torch.zeros(1, 1, PATCH_H, PATCH_W)  # gain 1
    skin = torch.tensor([0.6, 0.2, 0.0])[None, :, None, None].expand(1, 3, 8, 8)  # a colour face
    rgb = atlas.render(uv, shade, skin)
    want = torch.from_numpy(render_mouth()).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    assert torch.allclose(rgb, want, atol=1e-4)
    grey = atlas.render(uv, shade, skin.mean(dim=1, keepdim=True).expand(1, 3, 8, 8))  # a grey photo: grey teeth
    assert torch.allclose(grey[:, 0], grey[:, 2], atol=1e-5)
    assert torch.allclose(grey.mean(dim=1), want.mean(dim=1), atol=1e-4)
    bright = (atlas.render(uv, shade + 20.0, skin) + 1) / 2  # the brightest it may make the picture: +20 %
    assert torch.allclose(bright, (((want + 1) / 2) * 1.2).clamp(max=1.0), atol=1e-4)
    # switched on, the RGB comes from the atlas; λ = 0 stays the exact identity
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    s = torch.tensor([[2.0], [0.0]])
    off = net.forward_all(x, s)
    heads.use_atlas = True
    on = net.forward_all(x, s)
    assert set(on) == {"rgb", "mask", "flow", "uv", "shade"} and "uv" not in off
    assert on["uv"].shape == (2, 2, 64, 64) and not torch.allclose(on["rgb"], off["rgb"])
    assert torch.equal(on["mask"], off["mask"]) and torch.equal(on["flow"], off["flow"])
    rgb, mask, flow = net(x, s)
    assert torch.count_nonzero(mask[1]) == 0 and torch.count_nonzero(flow[1]) == 0
    assert torch.allclose(composite(x, rgb, mask, flow)[1], x[1], atol=1e-5)


def test_resolution_adapter_samples_the_atlas_at_full_size():
    torch.manual_seed(0)
    net = nets.build_net("mobile_unet", teeth_atlas=True).eval()
    net.heads.use_atlas = True
    with torch.no_grad():  # coordinates that sweep the picture across the crop
        net.heads.atlas.uv.weight.zero_()
        net.heads.atlas.uv.bias.zero_()
    ad = nets.ResolutionAdapter(net, 64, 128)
    face = torch.zeros(1, 3, 128, 128)
    s = torch.tensor([[2.0]])
    small = net.forward_all(torch.nn.functional.avg_pool2d(face, 2), s)
    rgb, mask, flow = ad(face, s)
    assert rgb.shape == (1, 3, 128, 128) and mask.shape == (1, 1, 128, 128)
    # the same fields, upsampled, then rendered: identical to rendering the upsampled fields (up to
    # float rounding of the coordinates, which the picture's sharp edges amplify ~100×)
    up = lambda t: torch.nn.functional.interpolate(t, size=(128, 128), mode="bilinear", align_corners=False)  # noqa: E731
    assert torch.allclose(rgb, net.heads.atlas.render(up(small["uv"]), up(small["shade"]), face), atol=2e-3)
    assert torch.allclose(flow, up(small["flow"]) * 2.0, atol=1e-5)


def test_weights_from_before_the_atlas_load_and_nothing_else_may_be_missing(tmp_path):
    from training.export import load_generator
    from training.checkpoint import load_generator_state
    from training.nets import set_atlas

    old = nets.build_net("mobile_unet")
    new = nets.build_net("mobile_unet", teeth_atlas=True)
    missing = load_generator_state(new, old.state_dict())
    assert missing and all(".atlas." in k for k in missing)
    state = dict(old.state_dict())
    state.pop("heads.mask.bias")
    with pytest.raises(RuntimeError, match="does not fit"):
        load_generator_state(new, state)
    with pytest.raises(ValueError, match="teeth_atlas"):
        set_atlas(old, True)
    set_atlas(old, False)  # harmless without an atlas
    # a checkpoint saved in an atlas stage exports with the atlas switched on
    ckpt = tmp_path / "a.pt"
    torch.save({"arch": "mobile_unet", "net_kwargs": {"teeth_atlas": True}, "state": new.state_dict(), "step": 1,
                "train_size": 128, "atlas": True}, ckpt)
    net, _ = load_generator(ckpt, 256)
    assert net.net.heads.use_atlas is True


def test_an_atlas_model_exports_to_the_contract(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from smilecore.model import SmileModel
    from training import export

    torch.manual_seed(3)
    net = nets.build_net("mobile_unet", teeth_atlas=True)
    ckpt = tmp_path / "atlas.pt"
    torch.save({"arch": "mobile_unet", "net_kwargs": {"teeth_atlas": True}, "state": net.state_dict(), "step": 9,
                "train_size": 128, "atlas": True}, ckpt)
    out = tmp_path / "atlas.onnx"
    assert export.main(["--checkpoint", str(ckpt), "--out", str(out), "--metrics", str(tmp_path / "none.json")]) == 0
    model = SmileModel(out)  # the engine's contract check, GridSample included
    crops = np.random.default_rng(1).integers(0, 256, (2, 256, 256, 3), dtype=np.uint8)
    o = model.run(crops, np.array([0.0, 2.0], np.float32))
    assert not np.any(o.mask[0]) and not np.any(o.flow[0])  # λ = 0: exactly the identity
    assert o.rgb.shape == (2, 3, 256, 256) and np.abs(o.rgb).max() <= 1.0
    card = out.with_suffix(".md").read_text()
    assert "drawn by code" in card and "same drawn set of teeth" in card
    # the idle RGB conv head is neither counted nor exported
    full = nets.count_params(net)
    net.heads.use_atlas = True
    assert full - nets.count_params(net) == sum(p.numel() for p in net.heads.rgb.parameters())
