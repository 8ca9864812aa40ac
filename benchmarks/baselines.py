"""The paper's baseline networks for the model table (``python -m benchmarks models``): pix2pix's
UNet, the classic UNet and a MobileNetV2-encoder UNet, with the same interface and output heads
as the shipped Mobile UNet (``training.nets``; docs/model-contract.md)::

    rgb, mask, flow = net(face, strength)

They are never trained here (latency and size do not depend on the weights).  Needs the
``[train]`` extra (PyTorch).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from training.nets import ConvBNAct, DSConv, FiLM, OutputHeads, build_net, count_macs, count_params, strength_plane


# --------------------------------------------------------------------------- baseline: pix2pix UNet


class _Pix2PixLevel(nn.Module):
    """One recursive pix2pix UNet level: down conv, inner level, up conv, concatenated skip."""

    def __init__(self, outer: int, inner: int, sub: nn.Module | None, outermost: bool = False, innermost: bool = False):
        super().__init__()
        self.outermost = outermost
        down = [nn.Conv2d(outer, inner, 4, 2, 1, bias=False)]
        if not outermost:
            down = [nn.LeakyReLU(0.2, inplace=False)] + down
            if not innermost:
                down.append(nn.BatchNorm2d(inner))
        self.down = nn.Sequential(*down)
        self.sub = sub
        up_in = inner if innermost else inner * 2
        up = [nn.ReLU(inplace=False), nn.ConvTranspose2d(up_in, outer, 4, 2, 1, bias=False)]
        if not outermost:
            up.append(nn.BatchNorm2d(outer))
        self.up = nn.Sequential(*up)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.down(x)
        if self.sub is not None:
            y = self.sub(y)
        y = self.up(y)
        return y if self.outermost else torch.cat([x, y], dim=1)


class Pix2PixUNet(nn.Module):
    """The standard pix2pix UNet generator (8 down levels at 256², ngf = 64), λ as a fourth input channel.

    The last up-convolution produces ``ngf`` channels that feed the shared
    contract heads.  Benchmark baseline only.
    """

    def __init__(self, ngf: int = 64, levels: int = 8, flow_scale: float = 8.0, mask_tau: float = 0.5):
        super().__init__()
        mults = [1, 2, 4] + [8] * (levels - 3)
        level = _Pix2PixLevel(ngf * mults[-1], ngf * mults[-1], None, innermost=True)
        for i in range(levels - 2, 0, -1):
            level = _Pix2PixLevel(ngf * mults[i - 1], ngf * mults[i], level)
        self.inc = nn.Conv2d(4, ngf, 3, 1, 1)
        self.unet = _Pix2PixLevel(ngf, ngf, level, outermost=True)
        self.heads = OutputHeads(ngf, flow_scale, mask_tau)

    def forward(self, face: torch.Tensor, strength: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.unet(self.inc(strength_plane(face, strength)))
        return self.heads(F.relu(x), strength)


# --------------------------------------------------------------------------- baseline: MobileNetV2-encoder UNet


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1×1 expand (×t), depthwise 3×3, linear 1×1 project; residual when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(ConvBNAct(cin, hidden, 1))
        layers += [ConvBNAct(hidden, hidden, 3, stride, groups=hidden), ConvBNAct(hidden, cout, 1, act=False)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.residual else y


#: MobileNetV2 settings (expansion t, channels c, repeats n, first stride s), as in the paper
_MBV2 = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


class MobileNetV2UNet(nn.Module):
    """UNet whose encoder is MobileNetV2 (randomly initialised), decoder of depthwise-separable convs.

    Skips are taken at strides 1 (stem input level), 2, 4, 8, 16 and the
    bottleneck at stride 32; decoder fusion by concatenation.  Benchmark baseline only.
    """

    def __init__(self, flow_scale: float = 8.0, mask_tau: float = 0.5, dec_widths: tuple[int, ...] = (16, 24, 32, 96, 160)):
        super().__init__()
        self.full = ConvBNAct(4, 16, 3)  # stride-1 features for the last skip
        self.stem = ConvBNAct(16, 32, 3, stride=2)
        blocks: list[nn.Module] = []
        cin = 32
        self.skip_after: list[int] = []  # indices of blocks after which a new resolution ends
        for t, c, n, s in _MBV2:
            for j in range(n):
                blocks.append(InvertedResidual(cin, c, s if j == 0 else 1, t))
                cin = c
        self.blocks = nn.ModuleList(blocks)
        # block indices where the output resolution is about to drop: skips at strides 2, 4, 8, 16
        self.skip_idx = [0, 2, 5, 12]  # after blocks: 16@/2, 24@/4, 32@/8, 96@/16
        enc_ch = [16, 16, 24, 32, 96, 320]  # full, /2, /4, /8, /16, /32
        self.bottleneck_film = FiLM(320)
        self.dec = nn.ModuleList()
        x_ch = 320
        for i in range(4, -1, -1):  # target levels /16 .. full
            self.dec.append(nn.Sequential(DSConv(x_ch + enc_ch[i], dec_widths[i]), DSConv(dec_widths[i], dec_widths[i])))
            x_ch = dec_widths[i]
        self.heads = OutputHeads(dec_widths[0], flow_scale, mask_tau)

    def forward(self, face: torch.Tensor, strength: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        full = self.full(strength_plane(face, strength))
        x = self.stem(full)
        skips = [full]
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            if i in self.skip_idx:
                skips.append(x)
        x = self.bottleneck_film(x, strength)
        for dec, skip in zip(self.dec, reversed(skips)):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = dec(torch.cat([x, skip], dim=1))
        return self.heads(x, strength)


# --------------------------------------------------------------------------- baseline: the classic UNet


class _DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class StandardUNet(nn.Module):
    """The classic UNet (Ronneberger et al.): 4 poolings, double 3×3 convs of 64…1024 channels,
    transposed-conv up-sampling, concatenated skips (≈ 31 M parameters, the size of the paper's
    29.2 M "standard UNet"); λ as a fourth input channel, the shared contract heads. Benchmark baseline only.
    """

    def __init__(self, base: int = 64, flow_scale: float = 8.0, mask_tau: float = 0.5):
        super().__init__()
        ch = [base * 2 ** i for i in range(5)]
        self.downs = nn.ModuleList([_DoubleConv(4, ch[0])] + [_DoubleConv(ch[i - 1], ch[i]) for i in range(1, 5)])
        self.ups = nn.ModuleList([nn.ConvTranspose2d(ch[i], ch[i - 1], 2, 2) for i in range(4, 0, -1)])
        self.fuse = nn.ModuleList([_DoubleConv(2 * ch[i - 1], ch[i - 1]) for i in range(4, 0, -1)])
        self.heads = OutputHeads(ch[0], flow_scale, mask_tau)

    def forward(self, face: torch.Tensor, strength: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = strength_plane(face, strength)
        skips = []
        for i, down in enumerate(self.downs):
            x = down(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for up, fuse in zip(self.ups, self.fuse):
            x = fuse(torch.cat([up(x), skips.pop()], dim=1))
        return self.heads(x, strength)


#: architecture name -> constructor (``mobile_unet`` is training's own)
ARCHITECTURES = {
    "mobile_unet": build_net,
    "pix2pix_unet": Pix2PixUNet,
    "standard_unet": StandardUNet,
    "mobilenetv2_unet": MobileNetV2UNet,
}


def build(name: str, **kwargs) -> nn.Module:
    """Construct a network by architecture name (see :data:`ARCHITECTURES`)."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; choose one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name](**kwargs)


def summary(size: int = 256) -> str:
    """Markdown table of parameters and MACs/FLOPs of every architecture."""
    rows = ["| architecture | params | GMACs | GFLOPs |", "|---|---:|---:|---:|"]
    for name in ARCHITECTURES:
        net = build(name)
        macs = count_macs(net, size)
        rows.append(f"| {name} | {count_params(net) / 1e6:.2f} M | {macs / 1e9:.2f} | {2 * macs / 1e9:.2f} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(summary())
