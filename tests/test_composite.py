"""Full-resolution compositing, checked exactly with known network outputs."""
import numpy as np
import pytest

from smilecore.align import CROP_SIZE, align_face, apply_affine, template_points
from smilecore.composite import composite_face, feather_weight

S = CROP_SIZE


def _face_at(scale, tx=300.0, ty=200.0):
    """Alignment of a synthetic face whose crop is ``1/scale`` times larger in the photo."""
    crop_to_photo = np.array([[1 / scale, 0, tx], [0, 1 / scale, ty]])
    return align_face(apply_affine(crop_to_photo, template_points()))


def _outputs(dx=0.0, dy=0.0, mask=0.0, rgb=0.0):
    return (
        np.full((3, S, S), rgb, np.float32),
        np.full((1, S, S), mask, np.float32),
        np.stack([np.full((S, S), dx, np.float32), np.full((S, S), dy, np.float32)]),
    )


def _weights_everywhere(al, shape):
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    u = al.matrix[0, 0] * xs + al.matrix[0, 1] * ys + al.matrix[0, 2]
    v = al.matrix[1, 0] * xs + al.matrix[1, 1] * ys + al.matrix[1, 2]
    return feather_weight(u, v, S)


def test_zero_flow_zero_mask_is_bit_identical():
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, (700, 900, 3), dtype=np.uint8)
    out = photo.copy()
    edit = composite_face(photo, _face_at(0.5), *_outputs(), out=out)
    assert edit is not None
    box, weight = edit
    assert weight.max() == pytest.approx(1.0) and weight.shape == (box[3] - box[1], box[2] - box[0])
    assert np.array_equal(out, photo)


@pytest.mark.parametrize("scale", [0.5, 1.0, 0.2])
def test_translation_flow_moves_pixels_by_expected_photo_amount(scale):
    """A constant crop flow of (dx, dy) crop px samples the photo (dx, dy)/scale photo px away."""
    h, w = 1600, 2000
    yy, xx = np.mgrid[0:h, 0:w]
    photo = (1000 + 7 * xx + 3 * yy).astype(np.uint16)[..., None].repeat(3, axis=2)  # linear ramp
    al = _face_at(scale, tx=200, ty=100)
    out = photo.copy()
    composite_face(photo, al, *_outputs(dx=4.0, dy=-2.0), out=out)
    wgt = _weights_everywhere(al, (h, w))
    core = wgt >= 1.0
    assert core.sum() > 1000
    expected = photo[..., 0].astype(np.float64) + (7 * 4.0 - 3 * 2.0) / scale
    np.testing.assert_allclose(out[..., 0][core], expected[core], atol=0.51)
    # outside the feathered region nothing changed, bit for bit
    assert np.array_equal(out[wgt == 0], photo[wgt == 0])


def test_only_pixels_inside_feather_change_and_soft_edge_blends():
    rng = np.random.default_rng(2)
    photo = rng.integers(0, 256, (600, 600, 3), dtype=np.uint8)
    al = _face_at(0.8, tx=100, ty=80)
    out = photo.copy()
    composite_face(photo, al, *_outputs(dx=6.0, dy=3.0, mask=0.3, rgb=0.5), out=out)
    wgt = _weights_everywhere(al, photo.shape[:2])
    changed = np.any(out != photo, axis=2)
    assert changed.sum() > 10_000
    assert not np.any(changed & (wgt == 0)), "a pixel outside the feathered face region changed"
    # in the soft border the change is a fraction of the full change
    border = (wgt > 0.2) & (wgt < 0.5)
    full = wgt >= 1.0
    d = np.abs(out.astype(int) - photo.astype(int)).mean(axis=2)
    assert d[border].mean() < d[full].mean()


def test_mask_one_takes_network_rgb():
    photo = np.zeros((500, 500, 3), np.uint8)
    al = _face_at(1.0, tx=100, ty=100)
    out = photo.copy()
    composite_face(photo, al, *_outputs(mask=1.0, rgb=0.0), out=out)
    core = _weights_everywhere(al, photo.shape[:2]) >= 1.0
    assert np.all(out[core] == 128)  # rgb 0 in [-1,1] -> 127.5 -> 128


def test_grey_and_alpha_channels():
    rng = np.random.default_rng(3)
    photo = rng.integers(0, 65536, (500, 500, 2), dtype=np.uint16)  # grey + alpha, 16 bit
    al = _face_at(1.0, tx=100, ty=100)
    out = photo.copy()
    composite_face(photo, al, *_outputs(dx=5.0), out=out)
    assert np.array_equal(out[..., 1], photo[..., 1]), "alpha must not change"
    assert np.any(out[..., 0] != photo[..., 0])
    assert out.dtype == np.uint16


def test_face_partly_outside_photo():
    photo = np.random.default_rng(4).integers(0, 256, (300, 300, 3), dtype=np.uint8)
    al = _face_at(1.0, tx=-120, ty=150)  # crop square hangs off the left and bottom edges
    out = photo.copy()
    edit = composite_face(photo, al, *_outputs(dx=3.0), out=out)
    assert edit is not None
    assert edit[0][0] == 0 and edit[0][3] == 300
    assert np.any(out != photo)


def test_face_entirely_outside_photo_is_skipped():
    photo = np.zeros((100, 100, 3), np.uint8)
    assert composite_face(photo, _face_at(1.0, tx=5000, ty=5000), *_outputs(dx=3.0)) is None


def test_a_fractional_shift_keeps_fine_detail():
    """The photo is resampled once, bicubically: half-pixel shifts must not blur skin texture away
    (bilinear weights keep 85 % of the pixel-to-pixel contrast here, bicubic 96 %)."""
    from skimage import data

    photo = np.ascontiguousarray(data.astronaut()[:, :, :3])
    photo = np.tile(photo, (2, 2, 1))  # 1024², texture everywhere
    al = _face_at(1.0, tx=300, ty=300)
    out = photo.copy()
    composite_face(photo, al, *_outputs(dx=0.5, dy=0.5), out=out)
    core = _weights_everywhere(al, photo.shape[:2]) >= 1.0
    assert core.sum() > 10000

    def detail(img):
        g = img.astype(np.float32).mean(axis=2)
        return np.abs(np.diff(g, axis=1))[core[:, 1:]].mean()

    assert detail(out) > 0.92 * detail(photo)  # bilinear: 0.85, bicubic: 0.96


@pytest.mark.parametrize("channels,dtype", [(3, np.uint8), (1, np.uint8), (2, np.uint8), (4, np.uint8), (3, np.uint16)])
def test_a_second_face_keeps_the_first_faces_edit_where_it_does_not_reach(channels, dtype):
    """Faces are composited one after another from the same photo into one output: the second
    face's box overlaps the first face's edit, and where the second face's weight is 0 the first
    face's edit must stay (it used to be reset to the photo there)."""
    rng = np.random.default_rng(5)
    photo = rng.integers(0, 256, (600, 700, channels)).astype(dtype) * (257 if dtype == np.uint16 else 1)
    first, second = _face_at(1.0, tx=100, ty=100), _face_at(1.0, tx=260, ty=250)
    alone = photo.copy()
    composite_face(photo, first, *_outputs(dx=3.0, dy=2.0), out=alone)
    both = photo.copy()
    composite_face(photo, first, *_outputs(dx=3.0, dy=2.0), out=both)
    box, weight = composite_face(photo, second, *_outputs(dx=-3.0, dy=1.0), out=both)
    # the second face's box, where its weight is 0 but the first face changed the photo
    x0, y0, x1, y1 = box
    region = np.zeros(photo.shape[:2], bool)
    region[y0:y1, x0:x1] = weight == 0
    edited_first = np.any(alone != photo, -1)
    assert (region & edited_first).sum() > 500  # the case this test is about
    assert np.array_equal(both[region], alone[region])
    # and where it reaches, the second face's edit is there; alpha is never touched
    reached = np.zeros(photo.shape[:2], bool)
    reached[y0:y1, x0:x1] = weight >= 1
    assert np.any(both[reached] != photo[reached])
    if channels in (2, 4):
        assert np.array_equal(both[..., -1], photo[..., -1])


@pytest.mark.parametrize("channels,dtype", [(3, np.uint8), (1, np.uint8), (4, np.uint8), (3, np.uint16)])
def test_the_composite_gives_what_the_one_it_replaced_gave(channels, dtype):
    """The engine's composite (few arrays, updated in place, only over the feather's reach) against
    the one it replaced (kept as ``python -m benchmarks face``'s baseline), on smooth outputs of every
    kind, a face region and a painted mouth: the same changed box and weights, and nearly every pixel the same."""
    from benchmarks.composite_before import composite_before

    rng = np.random.default_rng(6)
    top = 65535 if dtype == np.uint16 else 255
    photo = rng.integers(0, top + 1, (700, 800, channels)).astype(dtype)
    al = _face_at(0.7, tx=150, ty=120)
    yy, xx = (np.mgrid[0:S, 0:S] / S).astype(np.float32)
    flow = np.stack([6 * np.sin(3 * yy) * xx, -4 * np.cos(2 * xx) * yy]).astype(np.float32)
    mouth = np.exp(-(((xx - 0.5) / 0.12) ** 2 + ((yy - 0.72) / 0.05) ** 2)).astype(np.float32)
    rgb = np.stack([0.8 * mouth - 0.2, 0.6 * mouth, 0.7 - xx]).astype(np.float32)
    shade = (0.2 * np.sin(5 * xx) * yy)[None].astype(np.float32)
    area = np.clip((0.4 - np.hypot(xx - 0.5, yy - 0.55)) * 20, 0, 1).astype(np.float32)
    a, b = photo.copy(), photo.copy()
    ours = composite_face(photo, al, rgb, mouth[None], flow, out=a, face_area=area, shade=shade)
    theirs = composite_before(photo, al, rgb, mouth[None], flow, out=b, face_area=area, shade=shade)
    assert ours[0] == theirs[0]
    np.testing.assert_allclose(ours[1], theirs[1], atol=1e-5)
    diff = np.abs(a.astype(np.int64) - b.astype(np.int64))
    changed = np.any(b != photo, -1)
    # where they differ, a warp position rounded the other way (the flow is carried into the photo before
    # resampling instead of after): a few pixels of an 8-bit photo by one, of a 16-bit one by a few
    assert changed.sum() > 20_000 and diff.max() <= (1 if dtype == np.uint8 else 4)
    assert (diff > 0).sum() < (0.001 if dtype == np.uint8 else 0.01) * changed.sum() * channels


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_a_grey_face_in_a_colour_picture_gets_a_grey_mouth(dtype):
    top = np.iinfo(dtype).max
    al = _face_at(1.0, tx=100, ty=100)
    rgb, mask, flow = _outputs(mask=0.0)
    rgb[0], rgb[1], rgb[2] = 0.6, -0.2, -0.5  # the network paints a reddish mouth
    mask[:, 150:190, 90:170] = 1.0
    ys, xs = np.mgrid[0:500, 0:500]
    grey = ((ys * 3 + xs * 5) % 97 + 80).astype(np.float64) / 255 * top  # textured skin, R = G = B
    photo = np.repeat(grey[..., None], 3, axis=2).astype(dtype)
    photo[:, :60] = np.array([90, 120, 160]) / 255 * top  # a blue canvas beside it
    out = photo.copy()
    composite_face(photo, al, rgb, mask, flow, out=out)
    box = out[100 + 150:100 + 190, 100 + 90:100 + 170].astype(np.int64)
    assert np.abs(box - photo[100 + 150:100 + 190, 100 + 90:100 + 170]).max() > 10 * top // 255  # it was painted...
    assert np.array_equal(box[..., 0], box[..., 1]) and np.array_equal(box[..., 1], box[..., 2])  # ...grey
    tinted = photo.astype(np.float64)
    tinted[..., 0] *= 1.1  # a (pale) colour face keeps the paint's colour
    tinted = np.clip(tinted, 0, top).astype(dtype)
    out = tinted.copy()
    composite_face(tinted, al, rgb, mask, flow, out=out)
    box = out[100 + 150:100 + 190, 100 + 90:100 + 170].astype(np.int64)
    assert (box[..., 0] - box[..., 2]).mean() > 30 * top // 255
