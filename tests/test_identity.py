"""training.identity: dlib's face descriptor network read from dlib's own file, in PyTorch.

Checked against dlib itself on the public-domain astronaut portrait
(``skimage.data.astronaut()``).  Skipped where torch or dlib is not installed.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
dlib = pytest.importorskip("dlib")

from skimage import data  # noqa: E402

from smilecore.align import align_face, extract_crop  # noqa: E402
from smilecore.dlib_models import dlib_model_file  # noqa: E402
from training import dlib_format, identity  # noqa: E402
from training.dlib_format import DlibFormatError, read_dlib_network  # noqa: E402
from training.landmarks68 import RECOGNIZER_FILE  # noqa: E402


@pytest.fixture(scope="module")
def astronaut():
    """The astronaut photo, its dlib 5-point shape and those landmarks as an array."""
    img = np.ascontiguousarray(data.astronaut())
    boxes, scores, _ = dlib.get_frontal_face_detector().run(img, 1)
    box = boxes[int(np.argmax(scores))]
    assert 150 < box.center().x < 300 and box.center().y < 200  # her face, not the badge
    predictor = dlib.shape_predictor(str(dlib_model_file("shape_predictor_5_face_landmarks.dat")))
    shape = predictor(img, box)
    landmarks = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
    return img, shape, landmarks


@pytest.fixture(scope="module")
def dlib_recognizer():
    return dlib.face_recognition_model_v1(str(dlib_model_file(RECOGNIZER_FILE)))


@pytest.fixture(scope="module")
def descriptor():
    torch.set_num_threads(1)
    return identity.FaceDescriptor()


def _as_input(crops: np.ndarray) -> "torch.Tensor":
    """uint8 [N,S,S,3] crops -> float [N,3,S,S] in [-1,1]."""
    return torch.from_numpy(np.ascontiguousarray(crops.transpose(0, 3, 1, 2))).float() / 127.5 - 1.0


# ----------------------------------------------------------------------------------------
# the file parser


def test_reader_primitives_follow_dlib_serialization():
    r = dlib_format._Reader(b"\x01\x02" + b"\x81\x1c" + b"\x00" + b"\x03\x0a\xd7\xa3\x81\x1c" + b"\x01\x05con_4" + b"10")
    assert r.integer() == 2
    assert r.integer() == -28
    assert r.integer() == 0
    assert r.real() == pytest.approx(0.04, abs=1e-8)  # mantissa 0xa3d70a * 2**-28
    assert r.string() == "con_4"
    assert r.boolean() is True and r.boolean() is False
    with pytest.raises(DlibFormatError, match="file ends early"):
        r.integer()


def test_bad_files_are_refused_with_a_clear_error(tmp_path):
    junk = tmp_path / "junk.dat"
    junk.write_bytes(b"\x01\x01\x01\x05hello")
    with pytest.raises(DlibFormatError, match="unsupported loss layer 'hello'"):
        read_dlib_network(junk)
    cut = tmp_path / "cut.dat"
    cut.write_bytes(dlib_model_file(RECOGNIZER_FILE).read_bytes()[:100_000])
    with pytest.raises(DlibFormatError, match="file ends early"):
        read_dlib_network(cut)


def test_parsed_network_has_dlibs_layout(descriptor):
    net = read_dlib_network(dlib_model_file(RECOGNIZER_FILE))
    kinds = [layer.kind for layer in net.layers]
    assert kinds.count("con") == 29
    assert kinds.count("add_prev") == 14
    assert net.input_size == (150, 150)
    assert net.input_mean == pytest.approx((122.782, 117.001, 104.298), abs=1e-3)
    assert net.layers[0].weight.shape == (32, 3, 7, 7) and net.layers[0].stride == (2, 2)
    assert net.layers[-1].kind == "fc" and net.layers[-1].weight.shape == (256, 128) and net.layers[-1].bias is None
    # the torch module: frozen, in eval mode, 14 residual blocks
    assert len(descriptor.net.blocks) == 14
    assert not any(p.requires_grad for p in descriptor.parameters())
    descriptor.train()
    assert not descriptor.training


# ----------------------------------------------------------------------------------------
# agreement with dlib


def test_network_matches_dlib_on_the_same_chip(astronaut, dlib_recognizer, descriptor):
    img, shape, _ = astronaut
    chip = dlib.get_face_chip(img, shape, size=150, padding=0.25)
    expected = np.array(dlib_recognizer.compute_face_descriptor(chip))
    net = descriptor.net
    with torch.no_grad():
        got = net(net.normalize(identity.chip_to_tensor(chip)))[0].numpy()
    assert got.shape == (128,)
    assert np.abs(got - expected).max() < 1e-4
    cosine = float(got @ expected / np.linalg.norm(got) / np.linalg.norm(expected))
    assert cosine > 0.9999


def test_chip_geometry_matches_dlib_get_face_chip(astronaut):
    import cv2

    img, shape, landmarks = astronaut
    chip = dlib.get_face_chip(img, shape, size=150, padding=0.25).astype(np.float32)
    m = identity.dlib_chip_matrix(landmarks)
    ours = cv2.warpAffine(img.astype(np.float32), m, (150, 150), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    # dlib truncates to uint8 (mean error 0.5); a 0.1-pixel shift would already cost more
    assert np.abs(ours - chip).mean() < 0.75
    shifted = cv2.warpAffine(img.astype(np.float32), m + [[0, 0, 0.3], [0, 0, 0]], (150, 150), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    assert np.abs(shifted - chip).mean() > np.abs(ours - chip).mean() + 0.1


def test_crop_is_resampled_to_the_chip_geometry(astronaut, descriptor):
    import cv2

    img, _, landmarks = astronaut
    crop = extract_crop(img, align_face(landmarks))
    with torch.no_grad():
        chip = descriptor.to_chip(_as_input(crop[None]))[0].numpy().transpose(1, 2, 0)
    m = identity.chip_to_crop_matrix()
    expected = cv2.warpAffine(crop.astype(np.float32), m, (150, 150), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    assert chip.shape == (150, 150, 3)
    assert np.abs(chip - expected).mean() < 0.01  # a 0.1-pixel shift would cost ~0.5


def test_descriptor_of_smilecore_crop_is_close_to_dlibs(astronaut, dlib_recognizer, descriptor):
    img, shape, landmarks = astronaut
    expected = np.array(dlib_recognizer.compute_face_descriptor(img, shape))
    crop = extract_crop(img, align_face(landmarks))
    with torch.no_grad():
        got = descriptor(_as_input(crop[None]))
    assert got.shape == (1, 128)
    dist = float(identity.identity_distance(got, torch.from_numpy(expected).float()[None])[0])
    assert dist < 0.1  # measured 0.03; two different people are typically 0.7+ apart


def test_identity_distance_tells_same_from_different(astronaut, descriptor):
    img, _, landmarks = astronaut
    crop = extract_crop(img, align_face(landmarks))
    mirrored = np.ascontiguousarray(crop[:, ::-1])  # the same person
    noise = np.random.default_rng(0).integers(0, 256, crop.shape, dtype=np.uint8)
    with torch.no_grad():
        d = descriptor(_as_input(np.stack([crop, mirrored, noise])))
    dist = identity.identity_distance(d[:1], d)
    assert dist.shape == (3,)
    assert float(dist[0]) == 0.0
    assert float(dist[1]) < 0.4 < identity.SAME_PERSON_DISTANCE < float(dist[2])


def test_gradients_reach_the_input_only(astronaut, descriptor):
    img, _, landmarks = astronaut
    crop = extract_crop(img, align_face(landmarks))
    x = _as_input(crop[None]).requires_grad_(True)
    target = descriptor(x).detach()
    y = (x + 0.2 * torch.randn_like(x)).clamp(-1, 1).detach().requires_grad_(True)
    loss = identity.identity_distance(descriptor(y), target).sum()
    loss.backward()
    assert float(loss.detach()) > 0
    assert y.grad is not None and torch.isfinite(y.grad).all() and float(y.grad.abs().sum()) > 0
    # the face region gets gradient, the crop's corners (outside dlib's chip) do not
    assert float(y.grad[..., 100:160, 100:160].abs().sum()) > 0
    assert float(y.grad[..., :10, :10].abs().sum()) == 0.0


def test_wrong_input_shape_is_refused(descriptor):
    with pytest.raises(ValueError, match=r"expects \[N,3,256,256\]"):
        descriptor(torch.zeros(1, 3, 128, 128))
