import numpy as np
import pytest

from smilecore.align import (
    CROP_SIZE,
    TEMPLATE_5PT,
    align_face,
    apply_affine,
    estimate_similarity,
    extract_crop,
    template_points,
)


def _similarity(scale, angle_deg, tx, ty):
    a = np.deg2rad(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx], [scale * np.sin(a), scale * np.cos(a), ty]])


def test_estimate_similarity_recovers_known_transform():
    src = np.random.default_rng(0).uniform(0, 100, (5, 2))
    m = _similarity(1.7, 23.0, 12.0, -5.0)
    got = estimate_similarity(src, apply_affine(m, src))
    np.testing.assert_allclose(got, m, atol=1e-9)


def test_estimate_similarity_rejects_degenerate_points():
    with pytest.raises(ValueError, match="degenerate"):
        estimate_similarity(np.ones((5, 2)), np.zeros((5, 2)))


def test_template_is_symmetric_and_inside_crop():
    t = TEMPLATE_5PT
    assert np.all((t > 0) & (t < 1))
    np.testing.assert_allclose(t[0, 0] + t[2, 0], 1.0)  # outer eye corners mirror
    np.testing.assert_allclose(t[1, 0] + t[3, 0], 1.0)
    assert t[4, 0] == pytest.approx(0.5)


def _dot_image(points, shape, radius=2.0):
    """Bright gaussian dots at sub-pixel positions on a dark float image."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros(shape)
    for x, y in points:
        img += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * radius**2))
    return img


def _centroids(img, approx, win):
    out = []
    for x, y in approx:
        x0, y0 = int(round(x)) - win, int(round(y)) - win
        patch = img[y0 : y0 + 2 * win + 1, x0 : x0 + 2 * win + 1]
        yy, xx = np.mgrid[y0 : y0 + 2 * win + 1, x0 : x0 + 2 * win + 1]
        out.append(((patch * xx).sum() / patch.sum(), (patch * yy).sum() / patch.sum()))
    return np.array(out)


@pytest.mark.parametrize("scale,angle", [(1.0, 0.0), (0.8, 12.0), (2.5, -20.0), (0.25, 5.0)])
def test_landmarks_crop_inverse_round_trip_within_half_pixel(scale, angle):
    """Dots drawn at the landmarks are found in the crop where the template says, and mapping
    the crop positions back through the inverse lands within 0.5 px of the originals."""
    # photo landmarks = template mapped by an arbitrary similarity (crop -> photo)
    crop_to_photo = _similarity(1.0 / scale, angle, 140.0, 90.0)
    lm = apply_affine(crop_to_photo, template_points())
    h = w = int(np.ceil(max(lm.max() + 60, 300 / scale)))
    radius = 2.0 / scale
    photo = (_dot_image(lm, (h, w), radius=radius) * 200).astype(np.float32)
    al = align_face(lm)
    crop = extract_crop(photo[:, :, None], al)[:, :, 0]
    assert crop.shape == (CROP_SIZE, CROP_SIZE)
    found = _centroids(crop, template_points(), win=6)
    np.testing.assert_allclose(found, template_points(), atol=0.5)
    back = apply_affine(al.inverse, found)
    # the error measured in crop pixels (the network's resolution)
    assert np.abs(back - lm).max() * scale <= 0.5
    np.testing.assert_allclose(apply_affine(al.inverse, apply_affine(al.matrix, lm)), lm, atol=1e-9)


def test_photo_region_covers_crop_square():
    lm = apply_affine(_similarity(2.0, 0.0, 50.0, 60.0), template_points())
    al = align_face(lm)
    x0, y0, x1, y1 = al.photo_region((10_000, 10_000))
    corners = apply_affine(al.inverse, np.array([[-0.5, -0.5], [CROP_SIZE - 0.5, CROP_SIZE - 0.5]]))
    assert x0 <= corners[0, 0] and y0 <= corners[0, 1]
    assert x1 >= corners[1, 0] and y1 >= corners[1, 1]
    assert x1 - x0 == pytest.approx(2 * CROP_SIZE, abs=3)
