"""dlib's ResNet face descriptor, re-implemented in PyTorch, for the identity loss.

The smile network must change the expression, not the person.  Training measures
that with dlib's face recognition network (``dlib_face_recognition_resnet_model_v1.dat``,
shipped in the ``face_recognition_models`` package): the Euclidean distance of the
128-D descriptors of the input and the edited face (dlib's convention: below 0.6
means "same person").

This module reads dlib's own serialized network file (dlib's binary
``serialize()`` format, parsed here without dlib) into an ``nn.Module`` with the
same layers, so the distance is differentiable.  ``tests/test_identity.py``
checks the descriptors against ``dlib.face_recognition_model_v1``.

Layout of the file (dlib's ``anet_type`` of ``dnn_face_recognition_ex.cpp``)::

    loss_metric( fc_no_bias 128 ( avg_pool_everything (
        14 residual blocks, from the input: 3 x 32 filters, 4 x 64, 3 x 128, 4 x 256;
        the first block of the 64, 128 and 256 groups and the last block down-sample (
        max_pool 3x3/2 ( relu ( affine ( con 32 7x7/2 ( input_rgb_image_sized 150 ))))))))

29 convolutions in all.  The input layer computes ``(rgb - mean) / 256`` with the
means stored in the file (122.782, 117.001, 104.298).  There is no L2
normalisation: dlib's descriptors have norms of about 1.4-1.5, and so do ours.

dlib serializes a network outside-in: every layer writes its version number,
then its sub-network, then its own details.  So the file starts with the
version numbers of all layers (outermost first), then the input layer, then the
details of each computational layer from the input towards the output.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from smilecore.align import CROP_SIZE, estimate_similarity, template_points

#: File name of dlib's face recognition network in ``face_recognition_models``.
DLIB_MODEL_NAME = "dlib_face_recognition_resnet_model_v1.dat"

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


class DlibFormatError(ValueError):
    """The file is not a dlib network of the expected kind."""


# ----------------------------------------------------------------------------------------
# reading dlib's serialization format


class _Reader:
    """Reads dlib's ``serialize()`` primitives from a byte buffer (dlib/serialize.h)."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise DlibFormatError(f"file ends early (wanted {n} bytes at offset {self.pos})")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def integer(self) -> int:
        """An integer: a control byte (bit 7 sign, low 4 bits byte count), then the
        magnitude's bytes, least significant first."""
        ctrl = self._take(1)[0]
        n = ctrl & 0x0F
        if n > 8:
            raise DlibFormatError(f"bad integer control byte 0x{ctrl:02x} at offset {self.pos - 1}")
        value = int.from_bytes(self._take(n), "little")
        return -value if ctrl & 0x80 else value

    def real(self) -> float:
        """A float/double: dlib's ``float_details`` (integer mantissa, integer exponent)."""
        mantissa = self.integer()
        exponent = self.integer()
        if exponent == 32000:
            return math.inf
        if exponent == 32001:
            return -math.inf
        if exponent == 32002:
            return math.nan
        return math.ldexp(mantissa, exponent)

    def string(self) -> str:
        n = self.integer()
        if n < 0 or n > 1 << 20:
            raise DlibFormatError(f"bad string length {n} at offset {self.pos}")
        return self._take(n).decode("latin-1")

    def boolean(self) -> bool:
        ch = self._take(1)
        if ch not in (b"0", b"1"):
            raise DlibFormatError(f"bad bool byte {ch!r} at offset {self.pos - 1}")
        return ch == b"1"

    def tensor(self) -> np.ndarray:
        """A ``resizable_tensor``: version, (n, k, nr, nc), then the values
        (version 2: little-endian float32; version 1: dlib floats)."""
        version = self.integer()
        shape = tuple(self.integer() for _ in range(4))
        if any(d < 0 for d in shape):
            raise DlibFormatError(f"bad tensor shape {shape}")
        count = int(np.prod(shape))
        if version == 2:
            values = np.frombuffer(self._take(4 * count), dtype="<f4").astype(np.float32)
        elif version == 1:
            values = np.array([self.real() for _ in range(count)], dtype=np.float32)
        else:
            raise DlibFormatError(f"unknown tensor version {version}")
        return values.reshape(shape)

    def alias(self) -> tuple[int, int, int, int]:
        """An ``alias_tensor`` (a shape only)."""
        version = self.integer()
        if version != 1:
            raise DlibFormatError(f"unknown alias_tensor version {version}")
        return tuple(self.integer() for _ in range(4))  # type: ignore[return-value]


@dataclass
class DlibLayer:
    """One computational layer of a dlib network, as read from the file."""

    kind: str  #: "con", "affine", "relu", "max_pool", "avg_pool", "add_prev", "fc"
    weight: np.ndarray | None = None  #: con [F,C,kh,kw]; affine gamma [C]; fc [in, out]
    bias: np.ndarray | None = None  #: con [F]; affine beta [C]; fc None (fc_no_bias)
    size: tuple[int, int] = (0, 0)  #: kernel / pooling window (0 = whole input)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)


@dataclass
class DlibNetwork:
    """A parsed dlib network: its input layer's settings and its computational layers
    in order from the input to the output."""

    input_mean: tuple[float, float, float]  #: per-channel RGB means subtracted by the input layer
    input_size: tuple[int, int]  #: rows, columns of the input image
    layers: list[DlibLayer] = field(default_factory=list)
    loss: str = ""


def _read_details(r: _Reader) -> DlibLayer:
    name = r.string()
    if name == "con_4":
        params = r.tensor().reshape(-1)
        num_filters, nr, nc = r.integer(), r.integer(), r.integer()
        stride = (r.integer(), r.integer())
        padding = (r.integer(), r.integer())
        filt, bias = r.alias(), r.alias()
        for _ in range(4):  # learning-rate / weight-decay multipliers
            r.real()
        nf = int(np.prod(filt))
        if filt[0] != num_filters or filt[2:] != (nr, nc) or params.size != nf + num_filters:
            raise DlibFormatError(f"inconsistent con_ layer: filters {filt}, {params.size} params")
        return DlibLayer(
            "con",
            weight=params[:nf].reshape(filt).copy(),
            bias=params[nf:].copy(),
            size=(nr, nc),
            stride=stride,
            padding=padding,
        )
    if name == "affine_":
        params = r.tensor().reshape(-1)
        gamma, beta = r.alias(), r.alias()
        mode = r.integer()
        ng = int(np.prod(gamma))
        if mode != 0 or params.size != ng + int(np.prod(beta)):
            raise DlibFormatError(f"unsupported affine_ layer (mode {mode}, {params.size} params)")
        return DlibLayer("affine", weight=params[:ng].copy(), bias=params[ng:].copy())
    if name == "bn_con2":
        # a batch-norm layer saved during training: fold its running statistics
        params = r.tensor().reshape(-1)
        gamma, _beta = r.alias(), r.alias()
        r.tensor(), r.tensor()  # means, invstds of the last batch
        running_means, running_vars = r.tensor().reshape(-1), r.tensor().reshape(-1)
        r.integer(), r.integer()  # num_updates, running_stats_window_size
        for _ in range(4):
            r.real()
        eps = r.real()
        ng = int(np.prod(gamma))
        g = params[:ng] / np.sqrt(running_vars + eps)
        b = params[ng:] - g * running_means
        return DlibLayer("affine", weight=g.astype(np.float32), bias=b.astype(np.float32))
    if name in ("relu_", "add_prev_"):
        return DlibLayer(name[:-1])
    if name in ("max_pool_2", "avg_pool_2"):
        nr, nc = r.integer(), r.integer()
        stride = (r.integer(), r.integer())
        padding = (r.integer(), r.integer())
        return DlibLayer(name[:-2], size=(nr, nc), stride=stride, padding=padding)
    if name == "fc_2":
        num_outputs, num_inputs = r.integer(), r.integer()
        params = r.tensor().reshape(-1)
        weights, _biases = r.alias(), r.alias()
        bias_mode = r.integer()
        for _ in range(4):
            r.real()
        nw = num_inputs * num_outputs
        if weights[:2] != (num_inputs, num_outputs) or params.size < nw:
            raise DlibFormatError(f"inconsistent fc_ layer: weights {weights}, {params.size} params")
        bias = params[nw : nw + num_outputs].copy() if bias_mode == 0 else None
        return DlibLayer("fc", weight=params[:nw].reshape(num_inputs, num_outputs).copy(), bias=bias)
    raise DlibFormatError(f"unsupported dlib layer type {name!r}")


def read_dlib_network(path: str | Path) -> DlibNetwork:
    """Parse a dlib DNN file whose network is a chain of the layer types dlib's face
    recognition ResNet uses (tags and skips carry no data and are not returned)."""
    r = _Reader(Path(path).read_bytes())
    if r.integer() != 1:
        raise DlibFormatError("not a dlib network file (expected add_loss_layer version 1)")
    loss = r.string()
    if loss == "loss_metric_2":
        r.real(), r.real()  # margin, distance threshold
    elif loss != "loss_metric_":
        raise DlibFormatError(f"unsupported loss layer {loss!r}")
    # version numbers of the layers, outermost first; 2 = add_layer, 1 = tag/skip
    # layer, and the add_layer directly on the input layer has version 2 or 3
    versions: list[int] = []
    while True:
        v = r.integer()
        versions.append(v)
        if v == 3 or len(versions) > 10_000:
            break
        if v not in (1, 2):
            raise DlibFormatError(f"unexpected layer version {v}")
    if versions[-1] != 3:
        raise DlibFormatError("unsupported dlib file version (input add_layer version 3 expected)")
    if r.string() != "input_rgb_image_sized":
        raise DlibFormatError("unsupported input layer (input_rgb_image_sized expected)")
    mean = (r.real(), r.real(), r.real())
    size = (r.integer(), r.integer())
    net = DlibNetwork(input_mean=mean, input_size=size, loss=loss)
    # the layer right on top of the input: details, flags, x_grad, output, grad_final, expansion factor
    net.layers.append(_read_details(r))
    for _ in range(3):
        r.boolean()
    for _ in range(3):
        r.tensor()
    r.integer()
    # every other layer, from the input towards the output
    for _ in range(versions.count(2)):
        net.layers.append(_read_details(r))
        for _ in range(3):
            r.boolean()
        for _ in range(3):  # x_grad, cached output, params_grad
            r.tensor()
    if r.pos != len(r.data):
        raise DlibFormatError(f"{len(r.data) - r.pos} unread bytes at the end of the file")
    return net


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
        from smilecore.detect import dlib_model_file

        path = dlib_model_file(DLIB_MODEL_NAME)
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
    portrait and on the given photos (read only, nothing is written)."""
    import sys

    import dlib
    from PIL import Image
    from skimage import data

    from smilecore.align import align_face, extract_crop
    from smilecore.detect import dlib_model_file

    paths = sys.argv[1:] if argv is None else argv
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(dlib_model_file("shape_predictor_5_face_landmarks.dat")))
    recognizer = dlib.face_recognition_model_v1(str(dlib_model_file(DLIB_MODEL_NAME)))
    descriptor = FaceDescriptor()
    images = [("astronaut", np.ascontiguousarray(data.astronaut()))]
    images += [(p, np.asarray(Image.open(p).convert("RGB"))) for p in paths]
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
            on_crop = descriptor(torch.from_numpy(crop.transpose(2, 0, 1)[None].copy()).float() / 127.5 - 1)
        print(
            f"{name}: network on dlib's chip: max |diff| {float((on_chip - expected).abs().max()):.2e}; "
            f"FaceDescriptor on the smilecore crop: distance {float(identity_distance(on_crop, expected)[0]):.4f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
