"""The smile network: the shipped Mobile UNet, its building blocks and the helpers training needs
(the paper's baselines, used only by ``python -m benchmarks models``, live in ``benchmarks/baselines.py``).

Every network here has the model contract's interface (docs/model-contract.md)::

    rgb, mask, flow = net(face, strength)

``face`` is ``[N,3,S,S]`` RGB in [-1, 1] and ``strength`` is ``[N,1]`` (λ).
``rgb`` is in [-1, 1] (tanh), ``mask`` in [0, 1] and ``flow`` is a backward
flow in crop pixels (channel 0 = dx, 1 = dy).

λ = 0 is the identity *by construction*: the flow is multiplied by λ and the
mask by ``1 - exp(-(λ/τ)²)``, so at λ = 0 both are exactly zero and the
composited output ``(1 - mask)·warp(face, flow) + mask·rgb`` equals the input.
Any S divisible by 32 works (the nets are fully convolutional); the shipped
model is exported at S = 256.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from smilecore.network_io import to_network_input


# --------------------------------------------------------------------------- building blocks


class ConvBNAct(nn.Sequential):
    """A plain ``k×k`` convolution, batch norm and ReLU."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: bool = True):
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class DSConv(nn.Sequential):
    """Depthwise-separable convolution: depthwise 3×3 (optionally strided) + pointwise 1×1, each BN + ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__(
            ConvBNAct(cin, cin, 3, stride, groups=cin),
            ConvBNAct(cin, cout, 1),
        )


class FiLM(nn.Module):
    """Feature-wise affine modulation by λ: ``x·(1 + γ(λ)) + β(λ)``; starts as the identity."""

    def __init__(self, channels: int, hidden: int = 32):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(1, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 2 * channels))
        nn.init.zeros_(self.mlp[2].weight)
        nn.init.zeros_(self.mlp[2].bias)

    def forward(self, x: torch.Tensor, strength: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.mlp(strength).chunk(2, dim=1)
        return x * (1.0 + gamma[:, :, None, None]) + beta[:, :, None, None]


class SkipFusion(nn.Module):
    """Progressive skip fusion (Eq. 4): ``α·skip + (1 − α)·up`` with ``α = sigmoid(a)``, one learned ``a`` per level."""

    def __init__(self, init: float = 0.0):
        super().__init__()
        self.logit = nn.Parameter(torch.tensor(float(init)))

    @property
    def alpha(self) -> torch.Tensor:
        """The current mixing weight α ∈ (0, 1)."""
        return torch.sigmoid(self.logit)

    def forward(self, skip: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        a = self.alpha
        return a * skip + (1.0 - a) * up


def mask_gate(strength: torch.Tensor, tau: float) -> torch.Tensor:
    """Smooth gate that is exactly 0 at λ = 0 and tends to 1 for |λ| ≫ τ: ``1 − exp(−(λ/τ)²)``."""
    return 1.0 - torch.exp(-torch.square(strength / tau))


def colourfulness(face: torch.Tensor) -> torch.Tensor:
    """[N,1,1,1] in [0, 1]: 0 for a grey face, 1 for any face with ordinary skin colour (mean
    |R − B| of 0.04 or more on the [-1, 1] scale). What is drawn into a face (the teeth atlas, the
    mouth network's fill) keeps this share of its own colour: grey in a grey photo."""
    return ((face[:, 0] - face[:, 2]).abs().mean(dim=(1, 2)) * 25.0).clamp(0.0, 1.0)[:, None, None, None]


def keep_colour(drawn: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
    """``drawn`` [N,3,H,W] with its colour scaled by :func:`colourfulness` of ``face``."""
    grey = drawn.mean(dim=1, keepdim=True)
    return grey + colourfulness(face) * (drawn - grey)


class TeethAtlas(nn.Module):
    """RGB drawn by sampling one fixed picture of an open smiling mouth (``training.teeth``).

    Two small heads on the decoder features predict, per pixel, where to sample the picture
    (``uv``: ``grid_sample`` coordinates in [-1, 1]) and how bright to make it (``shade``: a gain
    within ±20 %).  Both are smooth fields, so they are predicted at the features' resolution and
    may be upsampled before :meth:`render`: the teeth stay as sharp as the picture at any output
    size, which an RGB head trained with L1 against many different real teeth never was (it drew
    their average, a flat white band).  The shading can only do what the teacher does to the picture: one
    brightness gain, and grey teeth in a grey photo (decided from the face's colour, not learned).
    Trials with a learned colour offset and saturation hedged towards a dim grey mouth on colour
    photos.  The picture is drawn by code, not taken from any photo, and is rebuilt from the code
    (not stored in checkpoints).
    """

    def __init__(self, cin: int):
        super().__init__()
        from .teeth import render_mouth

        img = torch.from_numpy(render_mouth()).permute(2, 0, 1).float().div(255.0)
        self.register_buffer("image", img[None], persistent=False)
        self.uv = nn.Conv2d(cin, 2, 3, 1, 1)
        self.shade = nn.Conv2d(cin, 1, 3, 1, 1)
        nn.init.normal_(self.uv.weight, std=1e-3)
        nn.init.zeros_(self.uv.bias)
        nn.init.normal_(self.shade.weight, std=1e-3)
        nn.init.zeros_(self.shade.bias)

    def fields(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``uv`` [N,2,h,w] and ``shade`` [N,1,h,w] (gain logit) from features ``x``."""
        return self.uv(x), self.shade(x)

    def render(self, uv: torch.Tensor, shade: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        """RGB in [-1, 1] at the fields' resolution; ``face`` (any size) decides colour or grey."""
        n = uv.shape[0]
        tex = F.grid_sample(self.image.expand(n, -1, -1, -1), uv.permute(0, 2, 3, 1), mode="bilinear",
                            padding_mode="border", align_corners=False)
        tex = keep_colour(tex, face)
        out = tex * (1.0 + 0.2 * torch.tanh(shade))
        return (out * 2.0 - 1.0).clamp(-1.0, 1.0)


class OutputHeads(nn.Module):
    """The three contract heads.

    * ``rgb``: 3×3 conv, tanh.
    * ``mask``: 3×3 conv, sigmoid, times :func:`mask_gate` (0 at λ = 0).
    * ``flow``: 3×3 conv times ``flow_scale`` (crop pixels per unit output) times λ,
      so the flow is 0 at λ = 0 and grows with the strength.

    With ``upsample=True`` the features are at half the crop size: flow and mask
    (smooth fields) are predicted there and bilinearly upsampled ×2, and ``rgb`` is
    predicted at full size from the input face concatenated with the upsampled
    features (so it can copy the input's detail).  ``rgb_hidden > 0`` puts one
    full-resolution 3×3 conv + ReLU of that width before the RGB conv, so the
    head can draw detail finer than the half-resolution features (teeth edges).

    ``atlas=True`` adds a :class:`TeethAtlas`; while ``use_atlas`` is set (the curriculum's
    ``atlas`` stages and the models exported from them) ``rgb`` comes from it instead.
    """

    def __init__(self, cin: int, flow_scale: float = 8.0, mask_tau: float = 0.5, mask_bias: float = -2.0, upsample: bool = False,
                 rgb_hidden: int = 0, atlas: bool = False):
        super().__init__()
        self.upsample = upsample
        c_rgb = cin + (3 if upsample else 0)
        if rgb_hidden > 0:
            self.rgb = nn.Sequential(nn.Conv2d(c_rgb, rgb_hidden, 3, 1, 1), nn.ReLU(inplace=True), nn.Conv2d(rgb_hidden, 3, 3, 1, 1))
        else:
            self.rgb = nn.Conv2d(c_rgb, 3, 3, 1, 1)
        self.mask = nn.Conv2d(cin, 1, 3, 1, 1)
        self.flow = nn.Conv2d(cin, 2, 3, 1, 1)
        self.atlas = TeethAtlas(cin) if atlas else None
        self.use_atlas = False
        self.flow_scale = float(flow_scale)
        self.mask_tau = float(mask_tau)
        nn.init.constant_(self.mask.bias, mask_bias)  # start mostly "keep the warped input"
        nn.init.normal_(self.flow.weight, std=1e-3)
        nn.init.zeros_(self.flow.bias)

    def forward_all(self, x: torch.Tensor, strength: torch.Tensor, face: torch.Tensor | None = None,
                    out_size: tuple[int, int] | None = None) -> dict[str, torch.Tensor]:
        """``rgb``, ``mask``, ``flow`` (and ``uv``, ``shade`` when the atlas draws the RGB).

        ``out_size``: resolution of the outputs when the atlas draws (its fields are
        upsampled there before sampling); default the face's size.
        """
        atlas = self.atlas is not None and self.use_atlas
        size = out_size if out_size is not None else (face.shape[-2:] if face is not None else x.shape[-2:])
        up = lambda t: F.interpolate(t, size=size, mode="bilinear", align_corners=False)  # noqa: E731
        mask, flow = self.mask_flow(x, strength, tuple(size) if self.upsample or atlas else None)
        out: dict[str, torch.Tensor] = {}
        if atlas:
            assert face is not None
            uv, shade = self.atlas.fields(x)
            out["uv"], out["shade"] = up(uv), up(shade)
            out["rgb"] = self.atlas.render(out["uv"], out["shade"], face)
        else:
            if self.upsample:
                assert face is not None
                x = torch.cat([face, F.interpolate(x, size=face.shape[-2:], mode="bilinear", align_corners=False)], dim=1)
            out["rgb"] = torch.tanh(self.rgb(x))
        out["mask"], out["flow"] = mask, flow
        return out

    def mask_flow(self, x: torch.Tensor, strength: torch.Tensor, size: tuple[int, int] | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``mask`` and ``flow`` heads on features ``x``, bilinearly upsampled to ``size`` first
        (None: at the features' resolution)."""
        lam = strength[:, :, None, None]
        mask, flow = self.mask(x), self.flow(x)
        if size is not None:
            mask = F.interpolate(mask, size=size, mode="bilinear", align_corners=False)
            flow = F.interpolate(flow, size=size, mode="bilinear", align_corners=False)
        return torch.sigmoid(mask) * mask_gate(lam, self.mask_tau), flow * (self.flow_scale * lam)

    def forward(self, x: torch.Tensor, strength: torch.Tensor, face: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        o = self.forward_all(x, strength, face)
        return o["rgb"], o["mask"], o["flow"]


def strength_plane(face: torch.Tensor, strength: torch.Tensor) -> torch.Tensor:
    """``face`` with λ broadcast as a fourth input channel."""
    n, _, h, w = face.shape
    return torch.cat([face, strength[:, :, None, None].expand(n, 1, h, w)], dim=1)


# --------------------------------------------------------------------------- the shipped Mobile UNet


@dataclass(frozen=True)
class MobileUNetConfig:
    """Widths of the Mobile UNet, finest level first; the last entry is the bottleneck."""

    widths: tuple[int, ...] = (16, 32, 64, 128, 256, 384)
    blocks_per_level: int = 2
    #: first level at S/2 (stem stride 2, flow/mask upsampled ×2): ~4× cheaper, needed to train on a CPU
    half_res: bool = True
    flow_scale: float = 8.0
    mask_tau: float = 0.5
    #: width of the full-resolution hidden conv of the RGB head (model 1.0.0 had none: 0, a single conv)
    rgb_hidden: int = 16
    #: add the :class:`TeethAtlas` RGB path (used in the curriculum's ``atlas`` stages)
    teeth_atlas: bool = False
    #: hidden units of each :class:`FiLM`'s MLP (32; more in a model tuned with ``training.film_above``)
    film_hidden: int = 32


class MobileUNet(nn.Module):
    """Encoder-decoder of depthwise-separable convolutions with α-weighted skip fusion and λ conditioning.

    λ enters twice: as a constant fourth input channel and through FiLM on the
    bottleneck and on every decoder level.  With the default widths it has about
    0.94 M parameters and 0.33 GMACs (0.67 GFLOPs) at 256² (counted by :func:`count_macs`), half of them in
    the RGB head's full-resolution hidden conv.
    """

    def __init__(self, cfg: MobileUNetConfig | None = None):
        super().__init__()
        cfg = cfg or MobileUNetConfig()
        self.cfg = cfg
        w = list(cfg.widths)
        self.stem = ConvBNAct(4, w[0], 3, stride=2 if cfg.half_res else 1)
        self.enc = nn.ModuleList()
        self.enc.append(nn.Sequential(*[DSConv(w[0], w[0]) for _ in range(cfg.blocks_per_level)]))
        for i in range(1, len(w)):
            blocks = [DSConv(w[i - 1], w[i], stride=2)] + [DSConv(w[i], w[i]) for _ in range(cfg.blocks_per_level - 1)]
            self.enc.append(nn.Sequential(*blocks))
        self.bottleneck_film = FiLM(w[-1], cfg.film_hidden)
        self.bottleneck = DSConv(w[-1], w[-1])
        # decoder: level i receives the level i+1 output, reduces channels, upsamples, fuses with skip i
        self.reduce = nn.ModuleList([ConvBNAct(w[i + 1], w[i], 1) for i in range(len(w) - 1)])
        self.fuse = nn.ModuleList([SkipFusion() for _ in range(len(w) - 1)])
        self.dec_film = nn.ModuleList([FiLM(w[i], cfg.film_hidden) for i in range(len(w) - 1)])
        self.dec = nn.ModuleList(
            [nn.Sequential(*[DSConv(w[i], w[i]) for _ in range(cfg.blocks_per_level)]) for i in range(len(w) - 1)]
        )
        self.heads = OutputHeads(w[0], cfg.flow_scale, cfg.mask_tau, upsample=cfg.half_res, rgb_hidden=cfg.rgb_hidden,
                                 atlas=cfg.teeth_atlas)

    @property
    def alphas(self) -> list[float]:
        """Skip-fusion weights α, finest level first."""
        return [float(f.alpha.detach()) for f in self.fuse]

    def forward(self, face: torch.Tensor, strength: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        o = self.forward_all(face, strength)
        return o["rgb"], o["mask"], o["flow"]

    def forward_all(self, face: torch.Tensor, strength: torch.Tensor, out_size: tuple[int, int] | None = None) -> dict[str, torch.Tensor]:
        """All head outputs (:meth:`OutputHeads.forward_all`)."""
        return self.heads.forward_all(self.features(face, strength), strength, face, out_size)

    def features(self, face: torch.Tensor, strength: torch.Tensor) -> torch.Tensor:
        """The last decoder level's features, which the heads read."""
        x = self.stem(strength_plane(face, strength))
        skips = []
        for stage in self.enc:
            x = stage(x)
            skips.append(x)
        x = self.bottleneck(self.bottleneck_film(x, strength))
        for i in range(len(skips) - 2, -1, -1):
            up = F.interpolate(self.reduce[i](x), size=skips[i].shape[-2:], mode="bilinear", align_corners=False)
            x = self.fuse[i](skips[i], up)
            x = self.dec[i](self.dec_film[i](x, strength))
        return x


# --------------------------------------------------------------------------- running a net trained at a smaller size


class ResolutionAdapter(nn.Module):
    """Runs a net trained at ``train_size`` on ``size``² crops (``size`` a multiple of it).

    The face is box-filtered down (``avg_pool2d``), the net runs at
    ``train_size`` and its outputs are bilinearly upsampled; the flow is also
    multiplied by ``size / train_size`` because it is measured in crop pixels.
    λ = 0 stays the exact identity (zeros upsample to zeros).
    """

    def __init__(self, net: nn.Module, train_size: int, size: int):
        super().__init__()
        if size % train_size:
            raise ValueError(f"crop size {size} is not a multiple of the training size {train_size}")
        self.net = net
        self.factor = size // train_size

    def forward(self, face: torch.Tensor, strength: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.factor == 1:
            return self.net(face, strength)
        k = self.factor
        heads = getattr(self.net, "heads", None)
        if heads is not None and getattr(heads, "atlas", None) is not None and heads.use_atlas:
            # the atlas samples its picture at the full size: sharp teeth, not an upsampled blur
            o = self.net.forward_all(F.avg_pool2d(face, k), strength, out_size=tuple(face.shape[-2:]))
            return o["rgb"], o["mask"], o["flow"] * float(k)
        rgb, mask, flow = self.net(F.avg_pool2d(face, k), strength)
        up = lambda t: F.interpolate(t, scale_factor=float(k), mode="bilinear", align_corners=False)  # noqa: E731
        return up(rgb), up(mask), up(flow) * float(k)


# --------------------------------------------------------------------------- registry and measuring

#: architecture names training can build (``[train] arch``)
ARCHITECTURES = ("mobile_unet",)


def build_net(name: str = "mobile_unet", **kwargs) -> nn.Module:
    """Construct a network by architecture name (see :data:`ARCHITECTURES`); ``kwargs`` are
    :class:`MobileUNetConfig` fields (``[train.net]``)."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; choose one of {', '.join(ARCHITECTURES)}")
    return MobileUNet(MobileUNetConfig(**kwargs)) if kwargs else MobileUNet()


def network_input(crops: np.ndarray) -> torch.Tensor:
    """uint8 RGB crops [N,S,S,3] -> the network's ``face`` input, float [N,3,S,S] in [-1, 1]
    (:func:`smilecore.network_io.to_network_input`, as the engine feeds the exported model).
    The tensor keeps the crops' pixel-interleaved memory order (channels-last strides), which
    the convolutions of every caller were tuned and measured with."""
    return torch.from_numpy(to_network_input(crops))


def forward_all(net: torch.nn.Module, face: torch.Tensor, strength: torch.Tensor) -> dict[str, torch.Tensor]:
    """``net.forward_all`` where the net has it (``uv``/``shade`` in atlas stages), else rgb/mask/flow."""
    if hasattr(net, "forward_all"):
        return net.forward_all(face, strength)
    rgb, mask, flow = net(face, strength)
    return {"rgb": rgb, "mask": mask, "flow": flow}


def set_atlas(net: torch.nn.Module, on: bool) -> None:
    """Switch the net's RGB between its conv head and its :class:`~training.nets.TeethAtlas`."""
    heads = getattr(net, "heads", None)
    if on and (heads is None or getattr(heads, "atlas", None) is None):
        raise ValueError("an `atlas` stage needs [train.net] teeth_atlas = true")
    if heads is not None and hasattr(heads, "use_atlas"):
        heads.use_atlas = bool(on)


def count_params(net: nn.Module) -> int:
    """Number of trainable parameters the forward pass uses (a net drawing its RGB with the
    :class:`TeethAtlas` does not count its idle RGB conv head)."""
    heads = getattr(net, "heads", None) or getattr(getattr(net, "net", None), "heads", None)
    idle = {id(p) for p in heads.rgb.parameters()} if heads is not None and getattr(heads, "use_atlas", False) else set()
    return sum(p.numel() for p in net.parameters() if p.requires_grad and id(p) not in idle)


def count_macs(net: nn.Module, size: int = 256, inputs: tuple[torch.Tensor, ...] | None = None,
               skip: nn.Module | None = None) -> int:
    """Multiply-accumulates of one forward pass on a ``size``² crop (or on ``inputs``, for a
    network with other inputs), counted with forward hooks; the layers of ``skip`` (a part of
    ``net`` that an exported file does not hold) are left out.

    Counts convolutions, transposed convolutions and linear layers (the
    element-wise work of norms, activations and resampling is left out, as is usual).
    FLOPs ≈ 2 × MACs.
    """
    total = 0

    def conv_hook(mod: nn.Conv2d, _inp, out: torch.Tensor) -> None:
        nonlocal total
        k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
        total += out[0].numel() * k  # batch 1

    def tconv_hook(mod: nn.ConvTranspose2d, inp, _out) -> None:
        nonlocal total
        x = inp[0]
        total += x[0].numel() * mod.out_channels * mod.kernel_size[0] * mod.kernel_size[1] // mod.groups

    def linear_hook(mod: nn.Linear, _inp, out: torch.Tensor) -> None:
        nonlocal total
        total += out[0].numel() * mod.in_features

    handles = []
    skipped = {id(m) for m in skip.modules()} if skip is not None else set()
    for m in net.modules():
        if id(m) in skipped:
            continue
        if isinstance(m, nn.ConvTranspose2d):
            handles.append(m.register_forward_hook(tconv_hook))
        elif isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            net(*(inputs if inputs is not None else (torch.zeros(1, 3, size, size), torch.ones(1, 1))))
    finally:
        for h in handles:
            h.remove()
        net.train(was_training)
    return total
