"""``python -m training mouth-hidden``: the occluders it pastes over mouths, the sets it builds, and the
network it fits (smilecore.mouth_hidden runs it)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
from smilecore.align import align_face, extract_crop  # noqa: E402
from smilecore import detect_faces, mouth_hidden  # noqa: E402
from training import mouth_hidden as tm  # noqa: E402
from training.landmarks68 import crop_landmarks68  # noqa: E402


@pytest.fixture(scope="module")
def face(astronaut):
    crop = extract_crop(astronaut, align_face(detect_faces(astronaut)[0].landmarks, 256))
    return crop, crop_landmarks68(crop[None])[0]


def test_occluders_aimed_at_the_mouth_cover_it_and_the_others_lie_beside_it(face):
    crop, lm68 = face
    rng = np.random.default_rng(0)
    donors = np.stack([crop[::-1], crop[:, ::-1]])
    aimed = [tm.occluder(rng, crop, lm68, donors, aimed=True) for _ in range(40)]
    beside = [tm.occluder(rng, crop, lm68, donors, aimed=False) for _ in range(40)]
    for img, covered, across in aimed + beside:
        assert img.shape == crop.shape and img.dtype == np.uint8 and 0.0 <= covered <= 1.0 and 0.0 <= across <= 1.0
        assert not np.array_equal(img, crop)
    assert sum(tm.label(c, a) == 1 for _, c, a in aimed) >= 28
    assert sum(tm.label(c, a) == 0 for _, c, a in beside) >= 28
    lips = lm68[48:60]
    x0, y0 = np.floor(lips.min(0)).astype(int)
    x1, y1 = np.ceil(lips.max(0)).astype(int)
    assert sum(np.array_equal(img[:40], crop[:40]) for img, _, _ in aimed) >= 36  # the forehead is left alone
    covered = [img for img, c, _ in aimed if c >= 0.9]
    assert covered and all(np.abs(img[y0:y1, x0:x1].astype(int) - crop[y0:y1, x0:x1]).mean() > 5 for img in covered)


def test_a_finger_across_both_lips_counts_as_hiding_the_mouth_though_it_covers_little_of_them():
    import cv2

    lips = np.array([[40, 50], [50, 44], [60, 42], [70, 44], [80, 50], [70, 58], [60, 60], [50, 58]], np.float64)
    lip_mask = np.zeros((100, 120), np.uint8)
    cv2.fillPoly(lip_mask, [lips.astype(np.int32)], 1)
    covered = np.zeros((100, 120), bool)
    covered[20:90, 57:63] = True  # a finger up through the middle of both lips
    share = float(covered[lip_mask > 0].mean())
    across = tm.crossing(covered, lip_mask, lips)
    assert share < tm.HIDDEN_FROM and across == 1.0 and tm.label(share, across) == 1
    tip = np.zeros_like(covered)
    tip[55:90, 57:63] = True  # a fingertip on the lower lip only: neither (not taught)
    assert tm.label(float(tip[lip_mask > 0].mean()), tm.crossing(tip, lip_mask, lips)) is None
    corner = np.zeros_like(covered)
    corner[20:90, 38:43] = True  # across the very corner: the middle is not crossed
    assert tm.crossing(corner, lip_mask, lips) == 0.0
    assert tm.label(0.0, 0.0) == 0 and tm.label(tm.HIDDEN_FROM, 0.0) == 1


def test_fingers_are_drawn_across_the_lips(face):
    crop, lm68 = face
    rng = np.random.default_rng(2)
    donors = np.stack([crop[::-1], crop[:, ::-1]])
    kinds = dict(tm.KINDS)
    try:
        tm.KINDS.clear()
        tm.KINDS["finger"] = 1.0
        out = [tm.occluder(rng, crop, lm68, donors, aimed=True) for _ in range(30)]
    finally:
        tm.KINDS.clear()
        tm.KINDS.update(kinds)
    thin = [(c, a) for _, c, a in out if c < tm.HIDDEN_FROM and tm.label(c, a) == 1]
    assert len(thin) >= 3, [(round(c, 2), round(a, 2)) for _, c, a in out]  # hidden only by crossing


def test_degrade_keeps_the_crop_s_shape(face):
    crop, _ = face
    rng = np.random.default_rng(1)
    outs = [tm.degrade(rng, crop) for _ in range(12)]
    assert all(o.shape == crop.shape and o.dtype == np.uint8 for o in outs)
    assert any(not np.array_equal(o, crop) for o in outs)
    assert any(np.array_equal(o[..., 0], o[..., 1]) and np.array_equal(o[..., 1], o[..., 2]) for o in outs)  # some grey


def test_the_sets_and_the_fitted_network(face):
    crop, lm68 = face
    crops = np.stack([crop] * 12)
    x, y, counts = tm.make_set(crops, np.stack([lm68] * 12), np.arange(12), seed=3, batch=6)
    assert x.shape == (len(y), len(mouth_hidden.model().mean)) and set(np.unique(y)) == {0, 1}
    assert counts["seen"] == 12 and counts["hidden"] == int(y.sum()) and counts["hidden"] + counts["beside"] + 12 == len(y)
    weights = tm.fit_mlp(x, y, hidden=8, epochs=200)
    model = mouth_hidden.HiddenMouth.from_weights(tm._rounded(weights))
    p = model.probability(x)
    assert p[y == 1].mean() > 0.8 > 0.2 > p[y == 0].mean()  # it learns what it is shown
    assert model.w1.shape == (x.shape[1], 8)
