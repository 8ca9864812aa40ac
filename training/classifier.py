"""Step 4: a small smile classifier on aligned crops, and UTKFace smile labels.

Trained on the labelled faces (GENKI-4K smile/no-smile, ``expressions``
happiness/neutral), split by person (``prepare``'s split); the test split's
accuracy is reported.  The model is a small ResNet (~0.3 M parameters) on 48²
crops in [-1, 1]; colour images are randomly turned grey in training because
``expressions`` is mostly grayscale.

Outputs in ``cache_dir``: ``classifier.pt`` and ``labels.npz`` (``utk_smile_prob``
float32 [N] over the whole prepared index, NaN where not UTKFace; ``smile_prob``
for every face; ``confident`` int8 [N]: 1 smiling, 0 neutral, -1 unsure).
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import ClassifierConfig, get_logger, load_config
from .nets import network_input
from .prepare import load_prepared

#: Side of the classifier's input (crops of any size are resized to it).
INPUT_SIZE = 48
#: Channel widths of the four residual stages.
WIDTHS = (16, 32, 64, 128)


class _Block(nn.Module):
    """Residual block: two 3x3 convs, BN, ReLU; optional stride-2 projection."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.skip = None if (stride == 1 and cin == cout) else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        return F.relu(y + (x if self.skip is None else self.skip(x)))


class SmileClassifier(nn.Module):
    """Small ResNet: float [N,3,H,W] in [-1,1] (any H=W) -> smile logits [N]."""

    def __init__(self, widths: tuple[int, ...] = WIDTHS, input_size: int = INPUT_SIZE) -> None:
        super().__init__()
        self.input_size = input_size
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 2, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        blocks, cin = [], widths[0]
        for i, w in enumerate(widths):
            blocks.append(_Block(cin, w, 1 if i == 0 else 2))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(cin, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False, antialias=True)
        y = self.blocks(self.stem(x))
        return self.fc(self.drop(y.mean((2, 3)))).squeeze(1)


def load_classifier(path: str | Path) -> SmileClassifier:
    """The trained classifier in eval mode (``Config.classifier_path`` is where training puts it)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: run `python -m training classifier` first")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model = SmileClassifier(tuple(ckpt["widths"]), int(ckpt["input_size"]))
    model.load_state_dict(ckpt["state"])
    return model.eval()


def to_input(crops_uint8: np.ndarray, size: int = INPUT_SIZE) -> torch.Tensor:
    """uint8 [N,S,S,3] crops -> float [N,3,size,size] in [-1,1] (area-resized)."""
    crops_uint8 = np.asarray(crops_uint8)
    if crops_uint8.shape[1] != size:
        crops_uint8 = np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) for c in crops_uint8])
    return network_input(crops_uint8)


@torch.no_grad()
def smile_probability(model: nn.Module, crops_uint8: np.ndarray, batch: int = 256) -> np.ndarray:
    """Smile probability float32 [N] for uint8 [N,S,S,3] aligned crops."""
    model.eval()
    size = getattr(model, "input_size", INPUT_SIZE)
    out = []
    for a in range(0, len(crops_uint8), batch):
        out.append(torch.sigmoid(model(to_input(crops_uint8[a : a + batch], size))).numpy())
    return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Training augmentation on a [-1,1] batch: flip, grayscale, small affine jitter, brightness/contrast."""
    n = x.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    grey = torch.rand(n, generator=gen) < 0.5
    g = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None].expand_as(x)
    x = torch.where(grey[:, None, None, None], g, x)
    ang = (torch.rand(n, generator=gen) - 0.5) * 0.2
    sc = 1.0 + (torch.rand(n, generator=gen) - 0.5) * 0.12
    tx, ty = ((torch.rand(2, n, generator=gen) - 0.5) * 0.1)
    theta = torch.stack([torch.stack([sc * torch.cos(ang), -sc * torch.sin(ang), tx], 1), torch.stack([sc * torch.sin(ang), sc * torch.cos(ang), ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    c = 1.0 + (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 0.4
    b = (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 0.3
    return (x * c + b).clamp(-1, 1)


def evaluate(model: nn.Module, x: torch.Tensor, y: np.ndarray) -> float:
    """Accuracy of ``model`` on inputs ``x`` with 0/1 labels ``y``."""
    if len(y) == 0:
        return float("nan")
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(x[a : a + 512]) for a in range(0, len(x), 512)])
    return float(((logits > 0).numpy() == (y == 1)).mean())


def train(crops: np.ndarray, index: dict[str, np.ndarray], cc: ClassifierConfig, log: logging.Logger) -> tuple[SmileClassifier, dict[str, float]]:
    """Train on the labelled train split; pick the epoch by val accuracy; report test accuracy."""
    size = cc.input_size
    torch.manual_seed(cc.seed)
    gen = torch.Generator().manual_seed(cc.seed)
    labelled = np.flatnonzero(index["label"] >= 0)
    t0 = time.time()
    x_all = to_input(crops[labelled], size)
    log.info(f"{len(labelled)} labelled crops resized to {size}² in {time.time() - t0:.0f} s")
    y_all = index["label"][labelled].astype(np.int64)
    sp = index["split"][labelled]
    src = index["source"][labelled]
    tr, va, te = (np.flatnonzero(sp == s) for s in ("train", "val", "test"))
    model = SmileClassifier(input_size=size)
    log.info(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters; train {len(tr)} val {len(va)} test {len(te)}")
    epochs, bs = cc.epochs, cc.batch_size
    opt = torch.optim.AdamW(model.parameters(), lr=cc.lr, weight_decay=1e-4)
    steps = epochs * ((len(tr) + bs - 1) // bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cc.lr, total_steps=steps, pct_start=0.15)
    # balance the two sources a little: expressions faces weigh as much as genki in total
    ytr = torch.from_numpy(y_all[tr]).float()
    best, best_state = -1.0, None
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(len(tr), generator=gen).numpy()
        total, t1 = 0.0, time.time()
        for a in range(0, len(tr), bs):
            b = perm[a : a + bs]
            xb = augment(x_all[tr[b]], gen)
            loss = F.binary_cross_entropy_with_logits(model(xb), ytr[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(b)
        acc_va = evaluate(model, x_all[va], y_all[va])
        log.info(f"epoch {ep + 1}/{epochs}: loss {total / len(tr):.4f} val acc {acc_va:.4f} ({time.time() - t1:.0f} s)")
        if best_state is None or acc_va >= best:
            best, best_state = acc_va, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    model.eval()
    stats = {"val_acc": best, "test_acc": evaluate(model, x_all[te], y_all[te])}
    for s in np.unique(src):
        m = te[src[te] == s]
        stats[f"test_acc_{s}"] = evaluate(model, x_all[m], y_all[m])
    return model, stats


def main(argv: list[str] | None = None) -> int:
    """``python -m training classifier [--config PATH] [--threads N] [--label-only]``."""
    ap = argparse.ArgumentParser(prog="python -m training classifier", description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default [classifier] threads)")
    ap.add_argument("--label-only", action="store_true", help="reuse classifier.pt, only relabel")
    ap.add_argument("--epochs", type=int, default=None)
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    log = get_logger("classifier", cfg)
    cc = cfg.classifier
    if args.epochs:
        cc = dataclasses.replace(cc, epochs=args.epochs)
    torch.set_num_threads(args.threads or cc.threads)

    try:
        crops, index = load_prepared(cfg)
    except FileNotFoundError as exc:
        log.error(f"{exc}: run `python -m training prepare` first")
        return 2
    out = cfg.classifier_path
    if args.label_only:
        model = load_classifier(out)
    else:
        model, stats = train(crops, index, cc, log)
        log.info("held-out (test split, by person) accuracy: " + ", ".join(f"{k} {v:.4f}" for k, v in stats.items()))
        torch.save({"state": model.state_dict(), "widths": list(WIDTHS), "input_size": model.input_size, "stats": stats}, out)
        log.info(f"wrote {out}")
    t0 = time.time()
    prob = np.concatenate([smile_probability(model, crops[a : a + 1024]) for a in range(0, len(crops), 1024)])
    utk = index["source"] == "utkface"
    lo, hi = cc.neutral_below, cc.smiling_above
    confident = np.full(len(prob), -1, np.int8)
    confident[prob < lo] = 0
    confident[prob > hi] = 1
    utk_prob = np.where(utk, prob, np.nan).astype(np.float32)
    np.savez(cfg.cache / "labels.npz", utk_smile_prob=utk_prob, smile_prob=prob, confident=confident)
    for s in np.unique(index["source"]):
        m = index["source"] == s
        log.info(f"{s}: confident neutral (<{lo}) {int((m & (confident == 0)).sum())}, confident smiling (>{hi}) {int((m & (confident == 1)).sum())}, unsure {int((m & (confident == -1)).sum())}")
    m = utk & (index["split"] == "train")
    log.info(f"utkface train split: confident neutral {int((m & (confident == 0)).sum())}, smiling {int((m & (confident == 1)).sum())}; labelled in {time.time() - t0:.0f} s -> labels.npz")
    return 0
