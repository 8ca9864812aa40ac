"""A second judge for the realism test: a small CNN trained on the grey lower face.

The realism test's own judge is a logistic regression on HOG + LBP features
(:mod:`training.realism`). A model tuned while watching one judge can learn that judge's blind
spots, and the issue says the edits will be judged by others too, so this one looks at the
pixels instead: the same window, the same samples, the first of the same person-disjoint fold
assignments, a different learner. ``python -m training evaluate --cnn-judge`` reports it next to
the first. It is slow (about 28 s per fold on two CPU cores) and weaker: trained from scratch on
some 230 faces it needs many passes (on validation its ceiling, unedited neutral faces against
real smiles, rose from 0.72 after 20 epochs to 0.79 after 60 and 0.89 after 150; the first
judge's is 0.97), so read it next to its own ceiling.

The network: three 3 × 3 convolutions (16, 32, 64 channels, ReLU, 2 × 2 max pooling after the
first two), global average pooling and one linear output; about 23 k weights. Each grey window
(48 × 80) is standardised on its own (mean 0, spread 1), so overall brightness and contrast
carry nothing. Trained per fold from scratch: Adam (learning rate 2e-3, weight decay 1e-3),
:data:`EPOCHS` epochs of batches of 32, each face also shown mirrored; the held-out fold's
score is the mean logit of a face and its mirror image.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

#: Passes over the training folds per fit.
EPOCHS = 150
#: Faces per step.
BATCH = 32


def standardise(grey: np.ndarray) -> np.ndarray:
    """Grey windows (N, H, W) as float32, each of mean 0 and spread 1."""
    g = np.asarray(grey, np.float32)
    g = g - g.mean((1, 2), keepdims=True)
    return g / (g.std((1, 2), keepdims=True) + 1e-6)


def _net():
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 1))


def fit_cnn(x: np.ndarray, y: np.ndarray, seed: int = 0, epochs: int = EPOCHS) -> Callable[[np.ndarray], np.ndarray]:
    """Train the judge on standardised windows ``x`` (N, H, W) with labels ``y`` (1 = edited);
    returns a scorer: windows -> logits (higher = more likely edited)."""
    import torch

    torch.manual_seed(int(seed))
    rng = np.random.default_rng(int(seed))
    net = _net()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3, weight_decay=1e-3)
    xt = torch.from_numpy(np.ascontiguousarray(x, np.float32))[:, None]
    yt = torch.from_numpy(np.asarray(y, np.float32))
    loss_fn = torch.nn.BCEWithLogitsLoss()
    net.train()
    for _ in range(epochs):
        for idx in np.array_split(rng.permutation(len(xt)), max(1, int(np.ceil(len(xt) / BATCH)))):
            b = xt[idx]
            flip = torch.from_numpy(rng.random(len(idx)) < 0.5)
            b = torch.where(flip[:, None, None, None], b.flip(-1), b)
            opt.zero_grad()
            loss = loss_fn(net(b)[:, 0], yt[idx])
            loss.backward()
            opt.step()
    net.eval()

    def score(windows: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            t = torch.from_numpy(np.ascontiguousarray(windows, np.float32))[:, None]
            return ((net(t) + net(t.flip(-1))) / 2)[:, 0].numpy().astype(np.float64)

    return score
