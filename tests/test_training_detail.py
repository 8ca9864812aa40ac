"""training.detail: the fine detail an edit keeps on the face's skin, outside the mouth (issue 15 item 4)."""
import cv2
import numpy as np

from training.detail import detail_kept, skin_area

S = 256


def _landmarks() -> np.ndarray:
    """68 landmarks of a frontal face on a 256² crop: jaw, brows, nose, eyes, mouth at plausible places."""
    lm = np.zeros((68, 2))
    t = np.linspace(0, np.pi, 17)
    lm[0:17] = np.stack([128 - 90 * np.cos(t), 110 + 110 * np.sin(t)], 1)  # jaw, ear to ear through the chin (8)
    lm[17:27] = np.stack([np.linspace(50, 206, 10), np.full(10, 80)], 1)  # brows
    lm[27:36] = np.stack([np.full(9, 128), np.linspace(100, 160, 9)], 1)  # nose, tip (33) lowest
    lm[33] = (128, 160)
    lm[36:42] = np.stack([np.linspace(70, 110, 6), np.full(6, 105)], 1)
    lm[42:48] = np.stack([np.linspace(146, 186, 6), np.full(6, 105)], 1)
    lm[48:68] = np.stack([np.linspace(98, 158, 20), np.full(20, 185)], 1)
    return lm


def _skin(seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # pores and grain: noise a little smoother than the pixel grid, as a camera's is
    base = 150.0 + cv2.GaussianBlur(rng.normal(0, 30, (S, S)), (0, 0), 0.7)
    return np.repeat(np.clip(base, 0, 255).astype(np.uint8)[..., None], 3, 2)


def test_the_skin_leaves_out_the_mouth_and_the_world_around_the_face():
    area = skin_area(_landmarks(), S)
    assert area[130, 80] and area[130, 176]  # the cheeks
    assert not area[185, 128] and not area[200, 100]  # the mouth and the box around it
    assert not area[5, 5] and not area[250, 128]  # background, below the chin


def test_an_unchanged_face_keeps_all_its_detail_and_a_blurred_one_loses_it():
    face, lm = _skin(), _landmarks()
    assert detail_kept(face, face, lm) == 1.0
    blurred = cv2.GaussianBlur(face, (0, 0), 0.8)
    assert detail_kept(face, blurred, lm) < 0.6
    shift = np.float32([[1, 0, 0.5], [0, 1, 0.5]])
    bilinear = cv2.warpAffine(face, shift, (S, S), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    bicubic = cv2.warpAffine(face, shift, (S, S), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    assert detail_kept(face, bilinear, lm) < 0.5 < 0.7 < detail_kept(face, bicubic, lm)


def test_shading_and_a_repainted_mouth_do_not_count_as_lost_detail():
    face, lm = _skin(), _landmarks()
    y = np.linspace(0.9, 1.1, S)[:, None, None]  # a smooth gain, as the shade applies
    shaded = np.clip(face * y, 0, 255).astype(np.uint8)
    assert abs(detail_kept(face, shaded, lm) - 1.0) < 0.05
    painted = face.copy()
    painted[170:215, 100:156] = 200  # a flat painted mouth inside the left-out box
    assert detail_kept(face, painted, lm) == 1.0
