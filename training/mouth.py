"""``python -m training mouth``: train the mouth network (training/mouth_net.py) on real open mouths.

Self-supervised mouth completion (issue 15 item 1): every real face of the train split whose
lips are parted (inner-lip gap at least ``min_open`` of the mouth width), that is at least
``min_face_px`` pixels in its photo (teeth are not learned from blur) and whose opening shows
teeth over at least ``min_teeth`` of it (a smile's opening shows teeth) gives one example;
``[mouth]`` in training/config.toml holds every value. Its inner-lip polygon (dlib's landmarks
60–67), feathered as the teacher feathers the mask it teaches the smile network (up to 3× softer:
the network's mask is softer than a polygon), is the *opening*; grown over the lips by 0 to
``grow_max`` patch pixels (and 0 to ``reach_max`` more sideways, past the mouth's corners) it is
the *hole* (the region repainted). The network sees the mouth
patch with the hole hidden, the hole and the opening, and restores the hole. Losses: L1 inside
the hole, L1 of image edges near it, a little L1 outside it, and a hinge adversarial term from a
patch critic (after a warm-up) so that it draws teeth rather than their average.

Runs on the CPU (two cores: 36 minutes for the default 10,000 steps) and, with ``--device cuda``,
on a GPU (the faces travel there as a pack: ``python -m training pack --rows mouth``); checkpoints
every ``save_every`` steps in ``cache/mouth/`` and resumes from there.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .config import get_logger, load_config
from .donors import teeth_fraction
from .landmarks68 import INNER_LIPS, MOUTH, inner_gap
from .mouth_net import GROW, REACH, SIGMA_PX, MouthNet, PatchCritic, grow_region, mouth_frame, net_input, to_patch

def hole_mask(lm68: np.ndarray, size: int, blur: float = 1.0) -> np.ndarray:
    """The inner-lip polygon of ``lm68`` (crop px) on a ``size``² field, anti-aliased and feathered as
    the teacher's mask (Gaussian σ = 0.012 × mouth width, at least 0.6 px) times ``blur``."""
    width = max(1.0, float(np.linalg.norm(lm68[54] - lm68[48])))
    fill = np.zeros((size, size), np.uint8)
    cv2.fillPoly(fill, [np.round(lm68[INNER_LIPS] * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
    sigma = max(0.6, 0.012 * width) * blur
    return np.clip(cv2.GaussianBlur(fill.astype(np.float32) / 255.0, (0, 0), sigma), 0.0, 1.0)


def open_mouths(crops: np.ndarray, index: dict[str, np.ndarray], split: str, min_open: float, min_face_px: int,
                min_teeth: float) -> np.ndarray:
    """Rows of ``split`` whose lips are parted (gap / mouth width ≥ ``min_open``), whose faces are
    at least ``min_face_px`` in their photo, and whose opening shows teeth over at least
    ``min_teeth`` of its area (:func:`training.donors.teeth_fraction`)."""
    lm = index["lm68"]
    width = np.linalg.norm(lm[:, 54] - lm[:, 48], axis=1)
    gap = np.array([inner_gap(x) for x in lm]) / np.maximum(width, 1.0)
    rows = np.flatnonzero((index["split"] == split) & (gap >= min_open) & (index["face_px"] >= min_face_px))
    if min_teeth <= 0:
        return rows
    teeth = np.array([teeth_fraction(np.asarray(crops[i]), lm[i][MOUTH].astype(np.float64)) for i in rows])
    return rows[teeth >= min_teeth]


def make_batch(crops: np.ndarray, lm68: np.ndarray, rng: np.random.Generator, augment: bool = True, grow_max: int = 8,
               reach_max: int = 0, sigma_px: float = SIGMA_PX) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mouth patches, regions and openings ([B,3,H,W] in [-1, 1], [B,1,H,W], [B,1,H,W]) for uint8
    ``crops`` [B,S,S,3]: the opening is the inner-lip polygon, the region the opening grown by 0 to
    ``grow_max`` patch pixels, and 0 to ``reach_max`` more sideways past the corners (``GROW`` and
    ``REACH`` without ``augment``); the patch puts the opening's spread at ``sigma_px`` pixels
    (:func:`training.mouth_net.mouth_frame`)."""
    size = crops.shape[1]
    images, holes = [], []
    for crop, lm in zip(crops, lm68):
        crop, lm = np.asarray(crop), lm.astype(np.float64)
        if augment and rng.random() < 0.5:
            crop, lm = crop[:, ::-1], lm.copy()
            lm[:, 0] = size - 1 - lm[:, 0]
        img = crop.astype(np.float32) / 255.0
        if augment:
            if rng.random() < 0.1:
                img = np.repeat(img.mean(2, keepdims=True), 3, axis=2)
            img = np.clip(img * rng.uniform(0.8, 1.2) + rng.uniform(-0.05, 0.05), 0.0, 1.0)
        images.append(img * 2.0 - 1.0)
        # the smile network's mask is blurrier than a polygon
        holes.append(hole_mask(lm, size, rng.uniform(0.6, 3.0) if augment else 1.0))
    x = torch.from_numpy(np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2)))
    h = torch.from_numpy(np.stack(holes)[:, None])
    theta = mouth_frame(h, sigma_px)
    if augment:
        n = len(crops)
        theta[:, :, :2] *= torch.from_numpy(rng.uniform(0.9, 1.2, (n, 1, 1))).float()
        theta[:, :, 2] += torch.from_numpy(rng.uniform(-0.02, 0.02, (n, 2))).float()
    opening = to_patch(h, theta)
    grows = rng.integers(0, grow_max + 1, len(crops)) if augment else [GROW] * len(crops)
    reaches = rng.integers(0, reach_max + 1, len(crops)) if augment else [REACH] * len(crops)
    region = torch.cat([grow_region(opening[i : i + 1], int(g), int(r)) for i, (g, r) in enumerate(zip(grows, reaches))])
    return to_patch(x, theta), region, opening


def edges(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Horizontal and vertical differences of ``x``."""
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def generator_losses(pred: torch.Tensor, patch: torch.Tensor, hole: torch.Tensor) -> dict[str, torch.Tensor]:
    """L1 inside the hole, on the filled patch's edges near it, and outside it."""
    comp = patch * (1 - hole) + pred * hole
    area = hole.sum() * 3 + 1.0
    near = F.max_pool2d(hole, 5, 1, 2)
    ex, ey = edges(comp)
    rx, ry = edges(patch)
    edge = ((ex - rx).abs() * near[..., :, 1:]).sum() / area + ((ey - ry).abs() * near[..., 1:, :]).sum() / area
    return {"hole": ((pred - patch).abs() * hole).sum() / area, "edge": edge,
            "outside": ((pred - patch).abs() * (1 - hole)).mean()}


def sheet(patch: torch.Tensor, hole: torch.Tensor, pred: torch.Tensor, path: Path, n: int = 12) -> None:
    """A contact sheet: rows of (real, hidden, filled) patches (``hole``: the region)."""
    comp = patch * (1 - hole) + pred * hole
    rows = []
    for i in range(min(n, len(patch))):
        parts = [patch[i], patch[i] * (1 - hole[i]), comp[i]]
        rows.append(np.concatenate([((p.permute(1, 2, 0).numpy() + 1) * 127.5).clip(0, 255) for p in parts], 1))
    img = np.concatenate(rows, 0).astype(np.uint8)
    cv2.imwrite(str(path), cv2.cvtColor(cv2.resize(img, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST), cv2.COLOR_RGB2BGR))


def initial_weights(path: Path) -> dict[str, torch.Tensor]:
    """The mouth network's weights in ``path``: a merged model (.onnx, ``mouth-attach``) or a ``mouth.pt``."""
    if path.suffix == ".onnx":
        from .mouth_attach import mouth_from_model

        return mouth_from_model(path).net.state_dict()
    return torch.load(path, map_location="cpu", weights_only=False)["net"]


def main(argv: list[str] | None = None) -> int:
    """``python -m training mouth [--config PATH] [--steps N] [--out DIR] [--fresh] [--init WEIGHTS] [--threads T]``."""
    ap = argparse.ArgumentParser(prog="python -m training mouth", description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=None, help="config TOML (default training/config.toml; [mouth])")
    ap.add_argument("--steps", type=int, default=None, help="train up to this step (default [mouth] steps)")
    ap.add_argument("--out", default=None, help="folder for checkpoints and sheets (default cache/mouth)")
    ap.add_argument("--fresh", action="store_true", help="start over instead of resuming")
    ap.add_argument("--init", default=None,
                    help="start (when not resuming) from these weights: a model with a mouth network (.onnx) or a mouth.pt")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="where it trains: cpu (default) or cuda")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    from .prepare import load_prepared

    cfg = load_config(args.config)
    mc = cfg.mouth
    steps = args.steps or mc.steps
    log = get_logger("mouth", cfg)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else cfg.cache / "mouth"
    out.mkdir(parents=True, exist_ok=True)
    crops, index = load_prepared(cfg)
    rows = open_mouths(crops, index, "train", mc.min_open, mc.min_face_px, mc.min_teeth)
    val_rows = open_mouths(crops, index, "val", mc.min_open, mc.min_face_px, mc.min_teeth)
    log.info(f"{len(rows)} open mouths to learn from (train), {len(val_rows)} to check on (val)")
    torch.manual_seed(mc.seed)
    rng = np.random.default_rng(mc.seed)
    net, critic = MouthNet(mc.width).to(device), PatchCritic().to(device)
    opt_g = torch.optim.Adam(net.parameters(), lr=mc.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(critic.parameters(), lr=mc.lr_critic, betas=(0.5, 0.999))
    ckpt = out / "checkpoint.pt"
    step = 0
    if ckpt.exists() and not args.fresh:
        state = torch.load(ckpt, map_location=device, weights_only=False)
        net.load_state_dict(state["net"])
        critic.load_state_dict(state["critic"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        step = int(state["step"])
        rng = np.random.default_rng([mc.seed, step])
        log.info(f"resumed at step {step}")
    elif args.init:
        net.load_state_dict(initial_weights(Path(args.init)))
        log.info(f"starting from the mouth network of {args.init}")
    log.info(f"mouth network: {sum(p.numel() for p in net.parameters())} parameters")
    vrng = np.random.default_rng(1)
    vsel = np.sort(vrng.choice(val_rows, min(64, len(val_rows)), replace=False))
    v_patch, v_hole, v_open = (t.to(device) for t in make_batch(crops[vsel], index["lm68"][vsel], vrng, augment=False,
                                                                  sigma_px=mc.sigma_px))
    t0, seen = time.time(), 0
    while step < steps:
        sel = np.sort(rng.choice(rows, mc.batch, replace=False))
        patch, hole, opening = (t.to(device, non_blocking=True) for t in
                                make_batch(crops[sel], index["lm68"][sel], rng, grow_max=mc.grow_max, reach_max=mc.reach_max,
                                           sigma_px=mc.sigma_px))
        pred = net(net_input(patch, hole, opening))
        comp = patch * (1 - hole) + pred * hole
        use_adv = step >= mc.warmup
        for _ in range(mc.critic_steps if use_adv else 0):
            d_real = critic(patch, hole)
            d_fake = critic(comp.detach(), hole)
            loss_d = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
        parts = generator_losses(pred, patch, hole)
        loss = mc.w_hole * parts["hole"] + mc.w_edge * parts["edge"] + mc.w_outside * parts["outside"]
        if use_adv:
            adv = -critic(comp, hole).mean()
            loss = loss + mc.w_adv * adv
        opt_g.zero_grad()
        loss.backward()
        opt_g.step()
        step += 1
        seen += 1
        if step % 50 == 0:
            rate = seen / (time.time() - t0)
            log.info(f"step {step}: hole {parts['hole'].item():.4f} edge {parts['edge'].item():.4f} "
                     f"outside {parts['outside'].item():.4f}" + (f" adv {adv.item():.3f} d {loss_d.item():.3f}" if use_adv else "")
                     + f" ({rate:.2f} steps/s)")
        if step % mc.save_every == 0 or step == steps:
            with torch.no_grad():
                vp = net(net_input(v_patch, v_hole, v_open))
                vl = generator_losses(vp, v_patch, v_hole)
            log.info(f"step {step}: val hole L1 {vl['hole'].item():.4f} edge {vl['edge'].item():.4f}")
            torch.save({"net": net.state_dict(), "critic": critic.state_dict(), "opt_g": opt_g.state_dict(),
                        "opt_d": opt_d.state_dict(), "step": step, "width": mc.width, "sigma_px": mc.sigma_px}, ckpt.with_suffix(".tmp"))
            ckpt.with_suffix(".tmp").replace(ckpt)
            if step % (5 * mc.save_every) == 0 or step == steps:
                sheet(v_patch.cpu(), v_hole.cpu(), vp.cpu(), out / f"val_{step:06d}.png")
    weights = {k: v.detach().cpu() for k, v in net.state_dict().items()}  # loads anywhere
    torch.save({"net": weights, "width": mc.width, "sigma_px": mc.sigma_px, "step": step}, out / "mouth.pt")
    print(json.dumps({"weights": str(out / "mouth.pt"), "steps": step}))
    return 0
