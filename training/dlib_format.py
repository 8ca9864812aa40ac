"""Reading dlib's serialized face recognition network (dlib's binary ``serialize()`` format,
parsed here without dlib), for ``training.identity``.

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
