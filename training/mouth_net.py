"""The mouth network: draws the open mouth of a smile from the face around it (issue 15 item 1).

Real open mouths cannot ship as pictures (the data's licences forbid it), so a small network
learns to draw them: trained self-supervised on real open smiling mouths of the train split
(``python -m training mouth``), it sees a face whose mouth is hidden (the *region*: the opening
between the inner lips grown over the lips) and is told where the opening is (the *opening*), and
restores lips and teeth from what surrounds them (skin tone, light, noise, the lips' own colour at
the edge). ``python -m training mouth-attach`` puts it inside an exported smile model, after
the smile network: the network's ``mask`` is the opening, the face warped along its ``flow`` the
picture; the network's own paint is replaced by the fill, and the model's mask becomes the
region (the lips, which the warp stretches thin, are redrawn too). The engine and the model
contract are unchanged.

Everything here is written in PyTorch operators that export to ONNX, so training and the
exported model share one definition of the **mouth frame**: a patch of ``PATCH_H × PATCH_W``
pixels centred on the opening's centroid, scaled so that the opening's horizontal spread (the
standard deviation of its x coordinates, weighted by the mask) is ``SIGMA_PX`` patch pixels.
Training computes it from the real inner-lip polygon, inference from the network's mask.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .nets import keep_colour

#: The mouth patch (rows, columns) and the opening's horizontal spread in it, in patch pixels
#: (an opening spans about 4 spreads: about half the patch's width).
PATCH_H, PATCH_W = 48, 72
SIGMA_PX = 9.0
#: The smallest spread (crop pixels) a frame is built for: an empty or tiny mask.
MIN_SIGMA = 2.0
#: How far (patch pixels) the region the model repaints reaches beyond the opening (training draws
#: 0 to ``[mouth] grow_max`` per example, so that the network sees lips of every thickness hidden).
GROW = 4
#: How much further (patch pixels) the repainted region reaches sideways, past the mouth's corners,
#: than up and down: the corners of a real smile (the dark wedge where the cheek folds over them)
#: are drawn from real smiles rather than left as the warp stretched them (0: the region of 1.4.x).
REACH = 0
#: Mask values up to this much do not place the frame: a network's mask has a faint haze over the
#: whole crop (about 50 in all at any strength) that would otherwise pull the frame to the middle.
FLOOR = 0.05
#: Mask strengths up to this get the whole ``spread`` of :class:`MouthFill`; above it the spread
#: tapers linearly to none at strength 1 (a fully open mouth's mask is already sharp).
SPREAD_FULL = 0.7


def frame_params(mask: torch.Tensor, sigma_px: float = SIGMA_PX) -> tuple[torch.Tensor, ...]:
    """The mouth frame for ``mask`` [N,1,S,S] (the opening, 0..1) as four [N] tensors ``(sx, tx, sy,
    ty)``: the patch's normalised x (y) maps to the crop's ``sx · x + tx`` (``sy · y + ty``); the
    opening's horizontal spread is ``sigma_px`` patch pixels (see :func:`mouth_frame`)."""
    s = int(mask.shape[2])  # the crop's size is fixed per model: a constant in the exported graph
    coords = torch.arange(s, dtype=mask.dtype, device=mask.device)
    m = F.relu(mask[:, 0] - FLOOR)
    total = m.sum(dim=(1, 2)) + 1e-6
    mx = m.sum(dim=1)  # [N,S] over rows: weight per column
    my = m.sum(dim=2)  # weight per row
    cx = (mx * coords).sum(dim=1) / total
    cy = (my * coords).sum(dim=1) / total
    var = (mx * (coords - cx[:, None]) ** 2).sum(dim=1) / total
    scale = torch.sqrt(var + MIN_SIGMA**2) / sigma_px  # crop pixels per patch pixel
    return PATCH_W * scale / s, (2 * cx + 1) / s - 1, PATCH_H * scale / s, (2 * cy + 1) / s - 1


def mouth_frame(mask: torch.Tensor, sigma_px: float = SIGMA_PX) -> torch.Tensor:
    """``theta`` [N,2,3] for :func:`torch.nn.functional.affine_grid` mapping the mouth patch's
    normalised coordinates to those of the crop, from ``mask`` [N,1,S,S] (the opening, 0..1), the
    opening's horizontal spread ``sigma_px`` patch pixels (more: the network draws the mouth finer,
    with less of the face around it in the patch)."""
    sx, tx, sy, ty = frame_params(mask, sigma_px)
    zero = torch.zeros_like(sx)
    return torch.stack([torch.stack([sx, zero, tx], dim=1), torch.stack([zero, sy, ty], dim=1)], dim=1)


def inverse_frame(theta: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`mouth_frame`'s ``theta``: crop coordinates to patch coordinates."""
    a, tx = theta[:, 0, 0], theta[:, 0, 2]
    b, ty = theta[:, 1, 1], theta[:, 1, 2]
    zero = torch.zeros_like(a)
    return torch.stack([torch.stack([1 / a, zero, -tx / a], 1), torch.stack([zero, 1 / b, -ty / b], 1)], 1)


def _axis(n: int, like: torch.Tensor) -> torch.Tensor:
    """The normalised coordinates of ``n`` pixel centres (``align_corners=False``), [n]."""
    return (2 * torch.arange(n, dtype=like.dtype, device=like.device) + 1) / n - 1


def _grid(theta: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``F.affine_grid(theta, [N, C, h, w], align_corners=False)`` for a ``theta`` without rotation
    (scale and shift per axis), in operators that ONNX opset 17 has."""
    return _grid_of(theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2], h, w)


def _grid_of(sx: torch.Tensor, tx: torch.Tensor, sy: torch.Tensor, ty: torch.Tensor, h: int, w: int,
             dx: torch.Tensor | None = None, dy: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`_grid` from the frame's four [N] parameters, with ``dx``, ``dy`` [N,h,w] (normalised)
    added to its x and y when given. Broadcasts only: the exported graph computes no shapes."""
    gx = sx[:, None, None] * _axis(w, sx)[None, None, :] + tx[:, None, None]  # [N,1,w]
    gy = sy[:, None, None] * _axis(h, sy)[None, :, None] + ty[:, None, None]  # [N,h,1]
    gx, gy = (gx + dx, gy + dy) if dx is not None else torch.broadcast_tensors(gx, gy)
    return torch.stack([gx, gy], dim=3)


def _axis_weights(scale: torch.Tensor, shift: torch.Tensor, n_out: int, n_in: int, clamp: bool) -> torch.Tensor:
    """Bilinear resampling weights along one axis, [N, n_out, n_in]: output sample ``j`` (normalised
    coordinate ``(2j + 1)/n_out − 1``) reads the input at normalised ``scale · x + shift``
    (``align_corners=False``); ``clamp``: coordinates beyond the edge read the edge (``border``
    padding), else they read zeros (``zeros`` padding). One axis of :func:`F.grid_sample` for a
    grid without rotation, so an image resamples as two matrix products."""
    u = ((scale[:, None] * _axis(n_out, scale)[None, :] + shift[:, None] + 1) * n_in - 1) / 2  # input pixel coordinate
    if clamp:
        u = u.clamp(0.0, n_in - 1.0)
    i = torch.arange(n_in, dtype=scale.dtype, device=scale.device)
    return F.relu(1.0 - (u[:, :, None] - i).abs())


def _resample(image: torch.Tensor, theta: torch.Tensor, h: int, w: int, clamp: bool) -> torch.Tensor:
    """``F.grid_sample(image, _grid(theta, h, w), "bilinear", border if clamp else zeros)`` as two
    matrix products (exact for a ``theta`` without rotation, and far cheaper for a large output)."""
    return _resample_by(image, theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2], h, w, clamp)


def _resample_by(image: torch.Tensor, sx: torch.Tensor, tx: torch.Tensor, sy: torch.Tensor, ty: torch.Tensor,
                 h: int, w: int, clamp: bool) -> torch.Tensor:
    """:func:`_resample` from the four [N] parameters of a ``theta`` without rotation. The product
    with the fewer multiplications goes first (the two orders are the same sum)."""
    wy = _axis_weights(sy, ty, h, int(image.shape[2]), clamp)[:, None]  # [N,1,h,H]
    wxt = _axis_weights(sx, tx, w, int(image.shape[3]), clamp)[:, None].transpose(2, 3)  # [N,1,W,w]
    big_h, big_w = int(image.shape[2]), int(image.shape[3])
    if h * big_w * (big_h + w) <= w * big_h * (big_w + h):
        return torch.matmul(torch.matmul(wy, image), wxt)
    return torch.matmul(wy, torch.matmul(image, wxt))


def to_patch(image: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """``image`` [N,C,S,S] resampled (bilinear, border padding) into the mouth patch [N,C,PATCH_H,PATCH_W]."""
    return _resample(image, theta, PATCH_H, PATCH_W, clamp=True)


def from_patch(patch: torch.Tensor, theta: torch.Tensor, size: int) -> torch.Tensor:
    """``patch`` [N,C,PATCH_H,PATCH_W] resampled (bilinear) back into the crop [N,C,size,size] (0 outside)."""
    return _resample(patch, inverse_frame(theta), size, size, clamp=False)


def grow_region(opening: torch.Tensor, grow: int, reach: int = 0) -> torch.Tensor:
    """The region repainted around ``opening`` [N,1,H,W] (0..1): grown by ``grow`` patch pixels up
    and down and ``grow + reach`` sideways (a max filter), and softened by one pixel."""
    side = grow + reach
    region = F.max_pool2d(opening, (2 * grow + 1, 2 * side + 1), 1, (grow, side)) if side > 0 else opening
    return F.avg_pool2d(region, 3, 1, 1, count_include_pad=False)


def net_input(patch: torch.Tensor, region: torch.Tensor, opening: torch.Tensor) -> torch.Tensor:
    """The network's input: the patch (RGB in [-1, 1]) with the region hidden, the region, and the opening."""
    return torch.cat([patch * (1.0 - region), region, opening], dim=1)


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation), nn.LeakyReLU(0.2, inplace=True))


class MouthNet(nn.Module):
    """A small U-Net: (patch with the region hidden, region, opening) → RGB of the whole patch in [-1, 1].

    Plain 3×3 convolutions, few channels at full resolution: about 0.26 GFLOP per face (a few
    milliseconds on one CPU thread), with dilated convolutions at the coarsest level so that every
    pixel of the opening sees the lips and skin around it."""

    def __init__(self, width: int = 16):
        super().__init__()
        c1, c2, c3, c4 = width, 2 * width, 4 * width, 6 * width
        self.e1 = _conv(5, c1)
        self.e2 = nn.Sequential(_conv(c1, c2, 2), _conv(c2, c2))
        self.e3 = nn.Sequential(_conv(c2, c3, 2), _conv(c3, c3))
        self.e4 = nn.Sequential(_conv(c3, c4, 2), _conv(c4, c4, dilation=2), _conv(c4, c4, dilation=4), _conv(c4, c4))
        self.d3 = nn.Sequential(_conv(c4 + c3, c3), _conv(c3, c3))
        self.d2 = nn.Sequential(_conv(c3 + c2, c2), _conv(c2, c2))
        self.d1 = _conv(c2 + c1, c1)
        self.out = nn.Conv2d(c1, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.e1(x)
        e2 = self.e2(e1)
        e3 = self.e3(e2)
        e4 = self.e4(e3)
        up = lambda t: F.interpolate(t, scale_factor=2.0, mode="nearest")  # noqa: E731
        d3 = self.d3(torch.cat([up(e4), e3], 1))
        d2 = self.d2(torch.cat([up(d3), e2], 1))
        d1 = self.d1(torch.cat([up(d2), e1], 1))
        return torch.tanh(self.out(d1))


class PatchCritic(nn.Module):
    """The adversary: real or filled, per overlapping window of the patch (with the opening as a 4th channel)."""

    def __init__(self, width: int = 32):
        super().__init__()
        sn = nn.utils.spectral_norm
        self.net = nn.Sequential(
            sn(nn.Conv2d(4, width, 4, 2, 1)), nn.LeakyReLU(0.2, inplace=True),
            sn(nn.Conv2d(width, 2 * width, 4, 2, 1)), nn.LeakyReLU(0.2, inplace=True),
            sn(nn.Conv2d(2 * width, 4 * width, 3, 1, 1)), nn.LeakyReLU(0.2, inplace=True),
            sn(nn.Conv2d(4 * width, 1, 3, 1, 1)),
        )

    def forward(self, patch: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([patch, hole], 1))


class MouthFill(nn.Module):
    """The mouth network inside the exported model: (face, mask, flow) → (rgb, mask).

    ``face``: the contract's input [N,3,S,S] in [-1, 1]; ``mask``, ``flow``: the smile network's
    outputs. The face is warped along the backward ``flow`` (as the engine warps it, at the
    patch's pixels only); the mouth frame and the opening come from ``mask``, the region is the
    opening grown by ``grow`` patch pixels (and ``reach`` more sideways, past the corners). The ``rgb`` returned is the fill (0 beyond the patch)
    and the ``mask`` the region at the opening's own strength times ``opacity`` (at most 1): a faint
    opening, at a small λ, stays faint, and ``opacity`` > 1 makes a partly open mouth opaque sooner.
    ``spread`` > 1 counts the mask's soft edge as opening too (the opening the network is told of is
    ``min(1, spread · mask / its maximum)``): a thin opening, at a small λ, shows teeth instead of a
    dark slit. The whole spread applies up to a mask strength of :data:`SPREAD_FULL` (λ ≈ 1) and
    tapers to none at strength 1 (λ ≥ 2, where the mask is sharp already).
    Nothing outside the region is repainted, and the smile network's own paint is not used at all
    (the merged graph drops it).
    """

    def __init__(self, net: MouthNet, grow: int = GROW, opacity: float = 1.0, spread: float = 1.0, reach: int = REACH,
                 sigma_px: float = SIGMA_PX):
        super().__init__()
        self.net = net
        self.sigma_px = float(sigma_px)  # the frame the network learned in (training.mouth's [mouth] sigma_px)
        self.grow = grow
        self.reach = int(reach)
        self.opacity = float(opacity)
        self.spread = float(spread)

    def forward(self, face: torch.Tensor, mask: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = int(face.shape[2])
        sx, tx, sy, ty = frame_params(mask, self.sigma_px)
        # the net learned on openings that reach 1; the opening's strength comes back in the mask
        strength = mask.amax(dim=(1, 2, 3), keepdim=True)
        spread = 1.0 + (self.spread - 1.0) * ((1.0 - strength) / (1.0 - SPREAD_FULL)).clamp(0.0, 1.0)
        # the flow and the opening into the patch together (one pair of products)
        both = _resample_by(torch.cat([flow, (spread * mask / strength.clamp(min=FLOOR)).clamp(0.0, 1.0)], 1),
                            sx, tx, sy, ty, PATCH_H, PATCH_W, clamp=True)
        opening = both[:, 2:3]
        # the warped face, sampled at the patch's pixels only: the flow there says where each looks
        grid = _grid_of(sx, tx, sy, ty, PATCH_H, PATCH_W, both[:, 0] * (2.0 / s), both[:, 1] * (2.0 / s))
        patch = F.grid_sample(face, grid, mode="bilinear", padding_mode="border", align_corners=False)
        region = grow_region(opening, self.grow, self.reach)
        # grey in a grey photo: the network learned on colour and grey mouths alike, and tints some grey ones
        fill = keep_colour(self.net(net_input(patch, region, opening)), patch)
        back = _resample_by(torch.cat([fill, region], 1), 1 / sx, -tx / sx, 1 / sy, -ty / sy, s, s, clamp=False)
        return back[:, :3], back[:, 3:4] * (strength * self.opacity).clamp(max=1.0)
