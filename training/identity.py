"""dlib's ResNet face descriptor, re-implemented in PyTorch, for the identity loss.

The smile network must change the expression, not the person.  Training measures
that with dlib's face recognition network (``dlib_face_recognition_resnet_model_v1.dat``,
shipped in the ``face_recognition_models`` package): the Euclidean distance of the
128-D descriptors of the input and the edited face (dlib's convention: below 0.6
means "same person").

dlib's network file is read by ``training.dlib_format``; this module rebuilds it as an
``nn.Module`` with the same layers, so the distance is differentiable.
``tests/test_identity.py`` checks the descriptors against ``dlib.face_recognition_model_v1``.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from smilecore.align import CROP_SIZE, estimate_similarity, template_points

from .dlib_format import DlibFormatError, DlibLayer, DlibNetwork, read_dlib_network
from .landmarks68 import RECOGNIZER_FILE
from .nets import network_input

#: dlib's same-person threshold on the descriptor distance.
SAME_PERSON_DISTANCE = 0.6

#: Side of dlib's face chip, and the padding ``dlib.get_face_chip`` uses for it.
CHIP_SIZE = 150
CHIP_PADDING = 0.25

#: Gaussian blur (crop pixels) before resampling the crop to the chip.  0: plain
#: bilinear, like dlib itself below 2x reduction (S=256 -> chip is 1.43x); measured best.
DEFAULT_BLUR_SIGMA = 0.0

#: Where ``dlib.get_face_chip_details`` puts dlib's five landmarks, as fractions of
#: the unpadded chip (dlib/image_transforms/interpolation.h, 5-point branch).
#: Same order as ``smilecore.align.TEMPLATE_5PT``.
DLIB_CHIP_5PT = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ],
    dtype=np.float64,
)


# ----------------------------------------------------------------------------------------
# the network in PyTorch


class _Affine(nn.Module):
    """Per-channel ``x * gamma + beta`` (dlib's inference-time batch norm)."""

    def __init__(self, layer: DlibLayer):
        super().__init__()
        self.register_buffer("gamma", torch.from_numpy(layer.weight).view(1, -1, 1, 1))
        self.register_buffer("beta", torch.from_numpy(layer.bias).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma + self.beta


def _conv(layer: DlibLayer) -> nn.Conv2d:
    f, c, kh, kw = layer.weight.shape
    conv = nn.Conv2d(c, f, (kh, kw), stride=layer.stride, padding=layer.padding, bias=True)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(layer.weight))
        conv.bias.copy_(torch.from_numpy(layer.bias))
    return conv


class _ResidualBlock(nn.Module):
    """dlib's ``ares`` / ``ares_down``: relu(block(x) + shortcut(x)) where block is
    con-affine-relu-con-affine; the down-sampling variant's shortcut is a 2x2/2
    average pool.  dlib's ``add_prev`` adds tensors of different shapes by
    zero-padding both to the larger size (aligned at channel 0, row 0, column 0)."""

    def __init__(self, conv1: DlibLayer, aff1: DlibLayer, conv2: DlibLayer, aff2: DlibLayer, pool: DlibLayer | None):
        super().__init__()
        self.conv1, self.aff1 = _conv(conv1), _Affine(aff1)
        self.conv2, self.aff2 = _conv(conv2), _Affine(aff2)
        self.pool = None if pool is None else (pool.size, pool.stride, pool.padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.aff2(self.conv2(F.relu(self.aff1(self.conv1(x)))))
        if self.pool is not None:
            size, stride, padding = self.pool
            x = F.avg_pool2d(x, size, stride, padding)
        return F.relu(_add_padded(y, x))


def _add_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a + b`` over the union of their shapes, each zero outside itself (dlib ``tt::add``)."""
    if a.shape == b.shape:
        return a + b
    shape = [max(p, q) for p, q in zip(a.shape, b.shape)]
    pad_a = [0, shape[3] - a.shape[3], 0, shape[2] - a.shape[2], 0, shape[1] - a.shape[1]]
    pad_b = [0, shape[3] - b.shape[3], 0, shape[2] - b.shape[2], 0, shape[1] - b.shape[1]]
    return F.pad(a, pad_a) + F.pad(b, pad_b)


class DlibResNet(nn.Module):
    """dlib's face recognition ResNet.  Input: ``[N,3,150,150]`` float, dlib's input
    scaling (``(rgb255 - mean) / 256``, see :meth:`normalize`); output ``[N,128]``."""

    def __init__(self, net: DlibNetwork):
        super().__init__()
        layers = list(net.layers)
        kinds = [layer.kind for layer in layers]
        if kinds[:4] != ["con", "affine", "relu", "max_pool"] or kinds[-2:] != ["avg_pool", "fc"]:
            raise DlibFormatError(f"unexpected network layout: starts {kinds[:4]}, ends {kinds[-2:]}")
        self.register_buffer("mean", torch.tensor(net.input_mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.input_size = net.input_size
        self.stem_conv, self.stem_affine = _conv(layers[0]), _Affine(layers[1])
        mp = layers[3]
        self.stem_pool = (mp.size, mp.stride, mp.padding)
        blocks = []
        i = 4
        end = len(layers) - 2
        while i < end:
            k = kinds[i : i + 8]
            if k[:5] != ["con", "affine", "relu", "con", "affine"]:
                raise DlibFormatError(f"unexpected layers at {i}: {k}")
            if k[5] == "avg_pool":
                if k[6:8] != ["add_prev", "relu"]:
                    raise DlibFormatError(f"unexpected layers at {i}: {k}")
                blocks.append(_ResidualBlock(layers[i], layers[i + 1], layers[i + 3], layers[i + 4], layers[i + 5]))
                i += 8
            elif k[5:7] == ["add_prev", "relu"]:
                blocks.append(_ResidualBlock(layers[i], layers[i + 1], layers[i + 3], layers[i + 4], None))
                i += 7
            else:
                raise DlibFormatError(f"unexpected layers at {i}: {k}")
        if i != end or layers[end].size != (0, 0):
            raise DlibFormatError("unexpected network layout before the global average pool")
        self.blocks = nn.Sequential(*blocks)
        fc = layers[-1]
        self.fc = nn.Linear(fc.weight.shape[0], fc.weight.shape[1], bias=fc.bias is not None)
        with torch.no_grad():
            self.fc.weight.copy_(torch.from_numpy(fc.weight.T.copy()))
            if fc.bias is not None:
                self.fc.bias.copy_(torch.from_numpy(fc.bias))

    def normalize(self, rgb255: torch.Tensor) -> torch.Tensor:
        """dlib's input layer: ``(pixel - channel mean) / 256`` on 0..255 RGB ``[N,3,H,W]``."""
        return (rgb255 - self.mean) / 256.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem_affine(self.stem_conv(x)))
        size, stride, padding = self.stem_pool
        x = F.max_pool2d(x, size, stride, padding)
        x = self.blocks(x)
        x = x.mean(dim=(2, 3))
        return self.fc(x)


def load_dlib_resnet(path: str | Path | None = None) -> DlibResNet:
    """dlib's face recognition network (default: the file in ``face_recognition_models``),
    frozen, in eval mode."""
    if path is None:
        from smilecore.dlib_models import dlib_model_file

        path = dlib_model_file(RECOGNIZER_FILE)
    model = DlibResNet(read_dlib_network(path))
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def chip_to_tensor(chips: np.ndarray) -> torch.Tensor:
    """uint8 RGB chips ``[N,150,150,3]`` (or one ``[150,150,3]``) as a float ``[N,3,150,150]``
    tensor of 0..255 values (feed through :meth:`DlibResNet.normalize`)."""
    chips = np.asarray(chips)
    if chips.ndim == 3:
        chips = chips[None]
    return torch.from_numpy(np.ascontiguousarray(chips.transpose(0, 3, 1, 2))).float()


# ----------------------------------------------------------------------------------------
# from smilecore's aligned crop to dlib's face chip


def dlib_chip_points(size: int = CHIP_SIZE, padding: float = CHIP_PADDING) -> np.ndarray:
    """Where dlib's face chip puts the five landmarks, in chip pixels (dlib's pixel
    centres are at integer coordinates, like smilecore's)."""
    return (DLIB_CHIP_5PT + padding) / (1 + 2 * padding) * size


def dlib_chip_matrix(landmarks5: np.ndarray, size: int = CHIP_SIZE, padding: float = CHIP_PADDING) -> np.ndarray:
    """2x3 affine mapping chip pixels to photo pixels exactly as ``dlib.get_face_chip``
    samples them, for a face with dlib's five landmarks ``landmarks5`` (photo pixels).

    dlib fits the similarity ``T`` from :func:`dlib_chip_points` to the landmarks, then
    samples a square centred on ``T(size/2, size/2)`` whose side is ``size * scale(T)``,
    with its first and last pixel centres on the square's edges: a pixel pitch of
    ``(size * scale - 1) / (size - 1)`` instead of ``scale`` (checked against dlib to
    a thousandth of a pixel).
    """
    t = estimate_similarity(dlib_chip_points(size, padding), np.asarray(landmarks5, dtype=np.float64))
    scale = float(np.sqrt(abs(np.linalg.det(t[:, :2]))))
    rot = t[:, :2] / scale
    pitch = (size * scale - 1.0) / (size - 1.0)
    centre = t[:, :2] @ np.array([size / 2.0, size / 2.0]) + t[:, 2]
    m = np.zeros((2, 3))
    m[:, :2] = rot * pitch
    m[:, 2] = centre - m[:, :2] @ np.array([(size - 1) / 2.0, (size - 1) / 2.0])
    return m


def chip_to_crop_matrix(crop_size: int = CROP_SIZE, chip_size: int = CHIP_SIZE, padding: float = CHIP_PADDING) -> np.ndarray:
    """2x3 affine mapping dlib chip pixels to smilecore crop pixels: dlib's chip of a face
    whose landmarks sit exactly on smilecore's template (smilecore.align)."""
    return dlib_chip_matrix(template_points(crop_size), chip_size, padding)


class FaceDescriptor(nn.Module):
    """dlib's 128-D face descriptor of smilecore-aligned crops, differentiable.

    ``forward(x)``: ``x`` float ``[N,3,S,S]`` RGB in ``[-1,1]``, a crop in smilecore's
    template (smilecore.align, ``S = crop_size``); returns ``[N,128]``.  The crop is
    resampled into dlib's 150x150 chip geometry (:func:`chip_to_crop_matrix`) with
    ``F.grid_sample`` (bilinear, after a Gaussian blur of ``blur_sigma`` crop pixels
    against aliasing), then run through dlib's network.  All weights are frozen;
    gradients flow to ``x``.
    """

    def __init__(self, crop_size: int = CROP_SIZE, model_path: str | Path | None = None, blur_sigma: float = DEFAULT_BLUR_SIGMA):
        super().__init__()
        self.net = load_dlib_resnet(model_path)
        self.crop_size = crop_size
        m = chip_to_crop_matrix(crop_size)
        # sampling grid: chip pixel centres -> crop pixel coordinates -> [-1, 1]
        v, u = np.meshgrid(np.arange(CHIP_SIZE), np.arange(CHIP_SIZE), indexing="ij")
        pts = np.stack([u.ravel(), v.ravel()], 1).astype(np.float64)
        xy = pts @ m[:, :2].T + m[:, 2]
        grid = (xy + 0.5) / crop_size * 2 - 1  # align_corners=False convention
        self.register_buffer("grid", torch.from_numpy(grid.reshape(1, CHIP_SIZE, CHIP_SIZE, 2)).float())
        if blur_sigma > 0:
            r = max(1, int(math.ceil(3 * blur_sigma)))
            k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float32) / blur_sigma) ** 2)
            self.register_buffer("kernel", (k / k.sum()).view(1, 1, 1, -1).repeat(3, 1, 1, 1))
        else:
            self.kernel = None
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> "FaceDescriptor":
        """Stays in eval mode (the network is frozen)."""
        return super().train(False)

    def _blur(self, rgb: torch.Tensor) -> torch.Tensor:
        k = self.kernel
        r = k.shape[-1] // 2
        rgb = F.conv2d(F.pad(rgb, (r, r, 0, 0), mode="replicate"), k, groups=3)
        return F.conv2d(F.pad(rgb, (0, 0, r, r), mode="replicate"), k.transpose(2, 3), groups=3)

    def to_chip(self, x: torch.Tensor) -> torch.Tensor:
        """The crop ``[N,3,S,S]`` in ``[-1,1]`` resampled to dlib's chip, as 0..255 RGB."""
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != self.crop_size or x.shape[3] != self.crop_size:
            raise ValueError(f"FaceDescriptor expects [N,3,{self.crop_size},{self.crop_size}], got {list(x.shape)}")
        rgb = (x.float() + 1.0) * 127.5
        if self.kernel is not None:
            rgb = self._blur(rgb)
        grid = self.grid.expand(x.shape[0], -1, -1, -1)
        return F.grid_sample(rgb, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.net.normalize(self.to_chip(x)))


def identity_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Euclidean distance of descriptors ``[N,128]`` -> ``[N]`` (dlib: < 0.6 same person)."""
    return torch.linalg.vector_norm(a - b, dim=-1)


def main(argv: list[str] | None = None) -> int:
    """``python -m training.identity [IMAGE ...]``: compare with dlib on the astronaut
    portrait (``samples/astronaut.jpg``) and on the given photos (read only, nothing is written)."""
    import sys

    import dlib
    from PIL import Image

    from smilecore.align import align_face, extract_crop

    from .config import REPO_ROOT
    from .landmarks68 import face_recognizer, shape_predictor

    paths = sys.argv[1:] if argv is None else argv
    detector = dlib.get_frontal_face_detector()
    predictor = shape_predictor(5)
    recognizer = face_recognizer()
    descriptor = FaceDescriptor()
    images = [(str(p), np.asarray(Image.open(p).convert("RGB"))) for p in [REPO_ROOT / "samples" / "astronaut.jpg", *paths]]
    for name, img in images:
        boxes, scores, _ = detector.run(img, 1)
        if not boxes:
            print(f"{name}: no face")
            continue
        shape = predictor(img, boxes[int(np.argmax(scores))])
        chip = dlib.get_face_chip(img, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
        expected = torch.tensor(list(recognizer.compute_face_descriptor(chip)))[None]
        landmarks = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
        crop = extract_crop(img, align_face(landmarks, descriptor.crop_size))
        with torch.no_grad():
            on_chip = descriptor.net(descriptor.net.normalize(chip_to_tensor(chip)))
            on_crop = descriptor(network_input(crop[None]))
        print(
            f"{name}: network on dlib's chip: max |diff| {float((on_chip - expected).abs().max()):.2e}; "
            f"FaceDescriptor on the smilecore crop: distance {float(identity_distance(on_crop, expected)[0]):.4f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
