"""The crease network: per-face fine shading of the smiling lower face (issue 15 items 3 and 4).

The warp moves a neutral face's own skin and the transported shade (:mod:`training.transport`)
lights it as real smiles are lit, smoothly; neither draws what a smile adds at a finer scale, per
face: the folds beside the mouth's corners, the crease under the lower lip, the bunched cheek. The
realism test's fine band tells our λ = 2 edits from real smiles as surely as it tells unedited
neutral faces (docs/realism.md, fifteenth session), and no fixed map moved it (sixteenth). This
small network looks at the edited lower face (the warped, shaded face with the mouth network's
fill, grey, at half the crop's resolution) and adds a log gain to the model's ``shade``: darker
where a fold should be, lighter where skin stretches. It learns only adversarially, in ``python -m
training tune`` with ``parts = ["crease"]`` (against the critic of real smiles, its gain held
small by ``w_crease``): there is no ground truth of a neutral face's creases at λ = 2.

The engine and the model contract do not change: the part is appended to the graph after the
transport (``crease/``), reads the model's face, strength, rgb, mask, flow and shade, and writes
the shade. At λ ≤ 0 it adds exactly nothing.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: The part's names inside a merged graph, and the shade it reads (the transport's, renamed).
PREFIX = "crease/"
SHADE_IN = "shade_before_crease"
#: The crop size the part is built for, and the lower face it works on (x0, y0, x1, y1, crop
#: pixels; the realism test's window with a few pixels to spare), at half resolution.
SIZE = 256
REGION = (44, 124, 212, 236)
STEP = 2
#: The largest log gain it adds (±0.3: a fold 26 % darker, stretched skin 35 % lighter).
LIMIT = 0.3
#: Half-resolution pixels over which its gain fades in from the region's edges.
FADE = 6
#: The strength the network is told is λ clamped to this, over it.
LAM_SCALE = 2.5


def _ramp(n: int, fade: int) -> np.ndarray:
    """1 in the middle, rising as a half cosine over ``fade`` samples at each end (0 outside)."""
    k = np.arange(n, dtype=np.float64)
    edge = np.minimum(k + 0.5, n - k - 0.5) / fade
    return np.where(edge >= 1.0, 1.0, 0.5 - 0.5 * np.cos(np.pi * np.clip(edge, 0.0, 1.0))).astype(np.float32)


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation), nn.LeakyReLU(0.2, inplace=True))


class CreaseNet(nn.Module):
    """(face, strength, rgb, mask, flow, shade) -> the shade with the crease network's log gain added.

    A three-level U-Net of ``width`` channels over the lower face at half resolution (56 × 84): its
    input is the edited lower face in grey (the warped face under the model's shade, the mouth's
    fill over it), the painted mouth's mask and the strength; its output a log gain in ±
    :data:`LIMIT`, faded in at the region's edges and from λ = 0 to 1, none on the painted mouth.
    The last convolution starts at zero: a new network adds nothing."""

    def __init__(self, width: int = 8):
        super().__init__()
        c1, c2, c3 = width, 2 * width, 4 * width
        self.width = width
        self.e1 = _conv(3, c1)
        self.e2 = nn.Sequential(_conv(c1, c2, 2), _conv(c2, c2))
        self.e3 = nn.Sequential(_conv(c2, c3, 2), _conv(c3, c3, dilation=2), _conv(c3, c3))
        self.d2 = _conv(c3 + c2, c2)
        self.d1 = _conv(c2 + c1, c1)
        self.out = nn.Conv2d(c1, 1, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        x0, y0, x1, y1 = REGION
        h, w = (y1 - y0) // STEP, (x1 - x0) // STEP
        half = (STEP - 1) / 2.0
        gy, gx = torch.meshgrid(torch.arange(h, dtype=torch.float32) * STEP + y0 + half,
                                torch.arange(w, dtype=torch.float32) * STEP + x0 + half, indexing="ij")
        self.register_buffer("base", torch.stack([gx, gy], -1)[None])  # [1,h,w,2] crop pixels
        self.register_buffer("taper", torch.from_numpy(np.outer(_ramp(h, FADE), _ramp(w, FADE)))[None, None])
        self.residual: torch.Tensor | None = None  # the last forward's log gain (for tune's cost on it)

    def features(self, face: torch.Tensor, strength: torch.Tensor, rgb: torch.Tensor, mask: torch.Tensor,
                 flow: torch.Tensor, shade: torch.Tensor) -> torch.Tensor:
        """The network's input [N,3,h,w]: the edited lower face (grey), the painted mouth's mask, the strength."""
        x0, y0, x1, y1 = REGION
        grey = 0.299 * face[:, 0:1] + 0.587 * face[:, 1:2] + 0.114 * face[:, 2:3]
        fl = F.avg_pool2d(flow[:, :, y0:y1, x0:x1], STEP)
        pos = (self.base + fl.permute(0, 2, 3, 1)) * (2.0 / (SIZE - 1)) - 1.0
        warped = F.grid_sample(grey, pos, mode="bilinear", padding_mode="reflection", align_corners=True)
        lit = (warped + 1.0) * torch.exp(F.avg_pool2d(shade[:, :, y0:y1, x0:x1], STEP)) - 1.0
        m = F.avg_pool2d(mask[:, :, y0:y1, x0:x1], STEP)
        paint = F.avg_pool2d(0.299 * rgb[:, 0:1, y0:y1, x0:x1] + 0.587 * rgb[:, 1:2, y0:y1, x0:x1]
                             + 0.114 * rgb[:, 2:3, y0:y1, x0:x1], STEP)
        edited = (1.0 - m) * lit + m * paint
        lam = (strength.clamp(0.0, LAM_SCALE) / LAM_SCALE).reshape(-1, 1, 1, 1) * torch.ones_like(m)
        return torch.cat([edited, m, lam], 1)

    def gain(self, x: torch.Tensor) -> torch.Tensor:
        """The log gain [N,1,h,w] for the input ``x`` of :meth:`features`."""
        e1 = self.e1(x)
        e2 = self.e2(e1)
        e3 = self.e3(e2)
        d2 = self.d2(torch.cat([F.interpolate(e3, size=e2.shape[-2:], mode="nearest"), e2], 1))
        d1 = self.d1(torch.cat([F.interpolate(d2, size=e1.shape[-2:], mode="nearest"), e1], 1))
        return LIMIT * torch.tanh(self.out(d1)) * self.taper

    def forward(self, face, strength, rgb, mask, flow, shade):  # noqa: D102 (see the class)
        x0, y0, x1, y1 = REGION
        g = self.gain(self.features(face, strength, rgb, mask, flow, shade))
        up = F.interpolate(g, size=(y1 - y0, x1 - x0), mode="bilinear", align_corners=False)
        up = F.pad(up, (x0, SIZE - x1, y0, SIZE - y1)) * (1.0 - mask) * strength.clamp(0.0, 1.0).reshape(-1, 1, 1, 1)
        self.residual = up
        return shade + up


def put_crease(model, module: CreaseNet) -> None:
    """Put ``module`` into ``model`` (an ``onnx.ModelProto``, changed in place) as its last part, in
    place of the crease part it has, if any: it then decides the model's ``shade``."""
    import tempfile

    import onnx

    from smilecore import contract

    from .graph_parts import append_part, export_shade_part, remove_part, rename_in_graph

    if any(n.name.startswith(PREFIX) for n in model.graph.node):
        remove_part(model, PREFIX, {SHADE_IN: contract.OUTPUT_SHADE})
    with tempfile.TemporaryDirectory() as tmp:
        export_shade_part(module.eval(), Path(tmp) / "crease.onnx", SIZE)
        part = onnx.load(str(Path(tmp) / "crease.onnx"))
    rename_in_graph(model, {contract.OUTPUT_SHADE: SHADE_IN})
    shared = {"face": contract.INPUT_FACE, "strength": contract.INPUT_STRENGTH, "rgb": contract.OUTPUT_RGB,
              "mask": contract.OUTPUT_MASK, "flow": contract.OUTPUT_FLOW, "shade": SHADE_IN, "shade_out": contract.OUTPUT_SHADE}
    append_part(model, part, shared, PREFIX)
    onnx.checker.check_model(model)


def crease_from_model(model) -> CreaseNet | None:
    """The :class:`CreaseNet` inside a merged model (an ``onnx.ModelProto``), or None if it has none."""
    from onnx import numpy_helper

    state = {t.name[len(PREFIX):]: torch.from_numpy(numpy_helper.to_array(t).astype(np.float32))
             for t in model.graph.initializer if t.name.startswith(PREFIX)}
    if "e1.0.weight" not in state:
        return None
    module = CreaseNet(int(state["e1.0.weight"].shape[0]))
    module.load_state_dict({k: v for k, v in state.items() if k in module.state_dict()}, strict=False)
    missing = [k for k in module.state_dict() if k not in state and k not in ("base", "taper")]
    if missing:
        raise SystemExit(f"error: the model's crease part lacks {missing[:3]}")
    return module.eval()
