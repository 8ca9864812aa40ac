"""Losses of the smile network and the mouth-region PatchGAN discriminator.

All images are float ``[N,3,H,W]`` in [-1, 1].  Flows follow the model contract:
backward, in crop pixels of the current crop size, ``out(p) = in(p + flow(p))``,
channel 0 = dx, 1 = dy.  :func:`warp` implements that with ``grid_sample`` on a
pixel-centre grid (``align_corners=True``: pixel i's centre is at normalised
``2i/(S-1) - 1``), reflecting at the border like the teacher's
``cv2.BORDER_REFLECT101``.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from smilecore.contract import SHADE_OFFSET
from smilecore.network_io import blend, shaded

# --------------------------------------------------------------------------- warping and compositing


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward-warp ``image`` [N,C,H,W] by ``flow`` [N,2,H,W] (crop pixels): ``out(p) = image(p + flow(p))``."""
    n, _, h, w = image.shape
    ys = torch.arange(h, dtype=flow.dtype, device=flow.device)
    xs = torch.arange(w, dtype=flow.dtype, device=flow.device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    x = (gx + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    y = (gy + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([x, y], dim=-1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="reflection", align_corners=True)


def composite(face: torch.Tensor, rgb: torch.Tensor, mask: torch.Tensor, flow: torch.Tensor,
              shade: torch.Tensor | None = None) -> torch.Tensor:
    """The contract's edited crop (images in [-1, 1]): ``(1 − mask)·warp(face, flow) + mask·rgb``; with a
    contract-2 ``shade`` the warped pixels are shaded first (:func:`smilecore.network_io.shaded`)."""
    warped = warp(face, flow)
    if shade is not None:
        # the [0, 1] scale's offset o on the [-1, 1] scale: x01 + o = (x + 1 + 2o) / 2
        warped = shaded(warped, torch.exp(shade), 2.0 * SHADE_OFFSET + 1.0)
    return blend(warped, rgb, mask)


# --------------------------------------------------------------------------- image similarity


def _gaussian_window(size: int = 11, sigma: float = 1.5, device=None) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Single-channel images ``x`` [N,1,H,W] blurred by a Gaussian of ``sigma`` pixels (separable, a
    radius of 3σ), edges replicated."""
    r = max(1, int(3 * sigma + 0.5))
    g = _gaussian_window(2 * r + 1, sigma, x.device).to(x.dtype)
    y = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), g.view(1, 1, 1, -1))
    return F.conv2d(F.pad(y, (0, 0, r, r), mode="replicate"), g.view(1, 1, -1, 1))


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean structural similarity per image, ``[N]``, of images in [-1, 1] (computed on the [0, 1] scale)."""
    a = (a + 1.0) * 0.5
    b = (b + 1.0) * 0.5
    c = a.shape[1]
    g = _gaussian_window(window, sigma, a.device)
    kx = g.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    ky = g.view(1, 1, -1, 1).repeat(c, 1, 1, 1)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(x, kx, groups=c), ky, groups=c)

    mu_a, mu_b = blur(a), blur(b)
    saa = blur(a * a) - mu_a ** 2
    sbb = blur(b * b) - mu_b ** 2
    sab = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (saa + sbb + c2))
    return s.mean(dim=(1, 2, 3))


def total_variation(flow: torch.Tensor) -> torch.Tensor:
    """Mean absolute first difference of a field [N,C,H,W] (smoothness)."""
    dx = (flow[:, :, :, 1:] - flow[:, :, :, :-1]).abs().mean()
    dy = (flow[:, :, 1:, :] - flow[:, :, :-1, :]).abs().mean()
    return dx + dy


# --------------------------------------------------------------------------- the mouth-region discriminator

#: Mouth/cheek region of the aligned crop, as fractions of S: (y0, y1, x0, x1).
#: The template puts the nose tip at y = 0.589 S and the chin near 0.89 S.
MOUTH_REGION = (0.55, 0.95, 0.18, 0.82)
#: Size (h, w) the region is resampled to before the discriminator.
MOUTH_SIZE = (48, 80)


def mouth_region(x: torch.Tensor, region: tuple[float, float, float, float] = MOUTH_REGION,
                 size: tuple[int, int] = MOUTH_SIZE, gray: bool = True) -> torch.Tensor:
    """Cut the mouth/cheek region out of crops [N,3,S,S] and resample it to ``size``.

    With ``gray`` the region is turned into luminance (1 channel): the "real"
    smiling faces are mostly grayscale photos, so colour would otherwise let
    the discriminator tell real from generated without looking at the smile.
    """
    s = x.shape[-1]
    y0, y1, x0, x1 = (int(round(f * s)) for f in region)
    r = x[:, :, y0:y1, x0:x1]
    r = F.interpolate(r, size=size, mode="bilinear", align_corners=False, antialias=r.shape[-1] > size[1])
    if gray:
        r = (0.299 * r[:, 0:1] + 0.587 * r[:, 1:2] + 0.114 * r[:, 2:3])
    return r


class PatchDiscriminator(nn.Module):
    """A small PatchGAN (70×70-style, 4×4 convs) over the mouth region; returns patch logits and features."""

    def __init__(self, in_channels: int = 1, width: int = 32, layers: int = 3):
        super().__init__()
        blocks = []
        c = in_channels
        for i in range(layers):
            cout = width * (2 ** i)
            blocks.append(nn.Sequential(
                nn.utils.spectral_norm(nn.Conv2d(c, cout, 4, 2 if i < layers - 1 else 1, 1)),
                nn.LeakyReLU(0.2, inplace=True),
            ))
            c = cout
        self.blocks = nn.ModuleList(blocks)
        self.out = nn.utils.spectral_norm(nn.Conv2d(c, 1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        for b in self.blocks:
            x = b(x)
            feats.append(x)
        return self.out(x), feats


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge loss of the discriminator."""
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def hinge_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge loss of the generator."""
    return -fake_logits.mean()


def feature_matching(feats_a: list[torch.Tensor], feats_b: list[torch.Tensor]) -> torch.Tensor:
    """Perceptual term: mean L1 between discriminator features of two images (``b`` detached)."""
    return sum(F.l1_loss(a, b.detach()) for a, b in zip(feats_a, feats_b)) / max(len(feats_a), 1)


# --------------------------------------------------------------------------- smile ranking


def smile_ranking(logit_out: torch.Tensor, logit_in: torch.Tensor, strength: torch.Tensor,
                  margin: float = 0.5, min_abs: float = 0.25) -> torch.Tensor:
    """Margin ranking of the classifier's smile logit between λ and λ = 0.

    The model is the identity at λ = 0, so the input crop *is* the output at
    λ = 0: the logit must rise by ``margin`` for λ > 0 and fall for λ < 0.
    Samples with ``|λ| < min_abs`` are ignored.
    """
    lam = strength.view(-1)
    sign = torch.sign(lam)
    use = (lam.abs() >= min_abs).float()
    loss = F.relu(margin - sign * (logit_out - logit_in.detach())) * use
    return loss.sum() / use.sum().clamp_min(1.0)


def smile_floor(logit_out: torch.Tensor, strength: torch.Tensor, floor: float, start: float) -> torch.Tensor:
    """How far the classifier's smile logit of the edits at λ ≥ ``start`` falls short of ``floor``.

    :func:`smile_ranking` asks each edit only to rise above its own input, which a neutral face at
    λ = 2 does by several logits even when it ends below "smiling" (p < 0.5, logit < 0); this holds
    every strong edit's logit at ``floor`` or above (issue 15's bar: ≥ 90 % of non-smilers rated
    smiling at λ = 2). Mean hinge over the edits at λ ≥ ``start``; 0 when there are none.
    """
    lam = strength.view(-1)
    use = (lam >= start).float()
    loss = F.relu(floor - logit_out.view(-1)) * use
    return loss.sum() / use.sum().clamp_min(1.0)


def moved_points(points: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Where edits show the input's ``points`` [N,K,2] (crop pixels) given their backward ``flow``
    [N,2,S,S] (the output at p shows the input at p + flow(p)): two fixed-point steps of
    c' = c − flow(c'), as :func:`smilecore.facemesh._moved` does, differentiable in the flow."""
    size = flow.shape[-1]
    q = points
    for _ in range(2):
        grid = (q * (2.0 / (size - 1)) - 1.0).unsqueeze(1)  # [N,1,K,2], pixel centres at ±1 (align_corners)
        d = F.grid_sample(flow, grid, mode="bilinear", padding_mode="border", align_corners=True)[:, :, 0]  # [N,2,K]
        q = points - d.transpose(1, 2)
    return q


def smile_level(points: torch.Tensor) -> torch.Tensor:
    """:func:`smilecore.facemesh.smile_level` of face mesh landmarks [N,468,2] (or [N,K,2] holding at
    least the eye corners, mouth corners and lip middles at their mesh indices), in PyTorch: 0 for
    the median neutral face, 1 for the median real smile."""
    from smilecore import facemesh as fm

    eyes = [(points[:, a] + points[:, b]) / 2 for a, b in fm.EYE_CORNERS]
    scale = (eyes[0] - eyes[1]).norm(dim=-1).clamp_min(1e-6)
    left, right = points[:, fm.MOUTH_CORNERS[0]], points[:, fm.MOUTH_CORNERS[1]]
    middle = (points[:, fm.LIP_MIDDLE[0]] + points[:, fm.LIP_MIDDLE[1]]) / 2
    shape = torch.stack([(left - right).norm(dim=-1) / scale, (middle[:, 1] - (left[:, 1] + right[:, 1]) / 2) / scale], -1)
    neutral, smile = torch.tensor(fm.LEVEL_NEUTRAL).to(shape), torch.tensor(fm.LEVEL_SMILE).to(shape)
    weight = (smile - neutral) / torch.tensor(fm.LEVEL_SPREAD).to(shape) ** 2
    return (shape - neutral) @ weight / ((smile - neutral) @ weight)


def smile_reach(points: torch.Tensor, flow: torch.Tensor, strength: torch.Tensor, share: float, low: float,
                high: float) -> torch.Tensor:
    """How far edits at ``low`` ≤ λ ≤ ``high`` fall short of reading as ``share`` of the smile asked,
    by the engine's own measure: the smile level of the input's face mesh ``points`` [N,468,2] moved
    by each edit's ``flow`` (:func:`moved_points`, :func:`smile_level`) against the level at which
    :func:`smilecore.strength.own_strength` reads ``share`` × λ. Mean hinge over those edits (0 when
    there are none); the level, not the own strength, so that an edit reading as no smile at all
    still has a gradient."""
    from smilecore.strength import NEUTRAL_SPREAD

    lam = strength.view(-1)
    use = ((lam >= low) & (lam <= high)).float()
    if not bool(use.any()):
        return flow.new_zeros(())
    level = smile_level(moved_points(points, flow))
    target = NEUTRAL_SPREAD + (1.0 - NEUTRAL_SPREAD) * share * lam
    return (F.relu(target - level) * use).sum() / use.sum()


# --------------------------------------------------------------------------- the weighted total


def mask_loss(mask: torch.Tensor, t_mask: torch.Tensor, pos_weight: float = 20.0, eps: float = 1e-4) -> torch.Tensor:
    """Class-balanced binary cross-entropy of the mask head against the teacher's soft mask.

    The teacher's mouth interior covers ~1-2 % of the crop, so a plain mean L1
    is won by "mask = 0 everywhere": the sigmoid saturates and the mask (and
    with it the RGB head) never turns on — exactly what the first shipped model
    did.  Pixels with ``t_mask > 0`` weigh ``1 + pos_weight·t_mask``; unlike L1
    the cross-entropy's gradient does not vanish on a saturated sigmoid.
    """
    m = mask.clamp(eps, 1.0 - eps)
    w = 1.0 + pos_weight * t_mask
    bce = -(t_mask * torch.log(m) + (1.0 - t_mask) * torch.log(1.0 - m))
    return (w * bce).sum() / w.sum()


def mouth_rgb_loss(rgb: torch.Tensor, target: torch.Tensor, t_mask: torch.Tensor) -> torch.Tensor:
    """L1 of the RGB head against the target *where the teacher synthesised new appearance*, normalised by that area.

    Supervises the RGB head directly (teacher forcing): through the composite
    alone it only gets a gradient where the student's own mask is already on.
    Zero when no sample of the batch has a mouth opening.
    """
    area = t_mask.sum() * rgb.shape[1]
    if float(area) <= 0.0:
        return rgb.new_zeros(())
    return (t_mask * (rgb - target).abs()).sum() / area


def uv_loss(uv: torch.Tensor, t_uv: torch.Tensor, t_mask: torch.Tensor) -> torch.Tensor:
    """L1 between the student's and the teacher's picture coordinates (``nets.TeethAtlas``),
    weighted by the teacher's mask and normalised by its area; zero without any mouth opening.

    Supervising where to sample directly is what lets the atlas draw sharp teeth: through the
    RGB loss alone, bilinear sampling of a picture full of tooth edges gives a gradient that only
    sees the next pixel.
    """
    area = t_mask.sum()
    if float(area) <= 0.0:
        return uv.new_zeros(())
    return (t_mask * (uv - t_uv).abs().sum(dim=1, keepdim=True)).sum() / area


def reconstruction_terms(face: torch.Tensor, target: torch.Tensor, t_flow: torch.Tensor, t_mask: torch.Tensor,
                         rgb: torch.Tensor, mask: torch.Tensor, flow: torch.Tensor, strength: torch.Tensor) -> dict[str, torch.Tensor]:
    """The supervised terms against the teacher: returns the composited output under ``"out"`` and each loss.

    * ``l1``, ``ssim``: composited output vs. teacher target (``1 − SSIM``).
    * ``flow``: L1 to the teacher flow, in crop pixels.
    * ``mask``: :func:`mask_loss` (balanced cross-entropy) to the teacher mask.
    * ``rgb``: :func:`mouth_rgb_loss`, the RGB head inside the teacher's mask.
    * ``tv``: flow smoothness.
    * ``identity0``: L1 of output vs. input for samples with λ = 0 (0 by construction for the Mobile UNet).
    """
    out = composite(face, rgb, mask, flow)
    terms = {
        "out": out,
        "l1": F.l1_loss(out, target),
        "ssim": 1.0 - ssim(out, target).mean(),
        "flow": F.l1_loss(flow, t_flow),
        "mask": mask_loss(mask, t_mask),
        "rgb": mouth_rgb_loss(rgb, target, t_mask),
        "tv": total_variation(flow),
    }
    zero = (strength.view(-1) == 0).float()
    if zero.sum() > 0:
        per = (out - face).abs().mean(dim=(1, 2, 3))
        terms["identity0"] = (per * zero).sum() / zero.sum()
    else:
        terms["identity0"] = out.new_zeros(())
    return terms
