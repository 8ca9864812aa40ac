"""When things change during training: the curriculum's stage at a step, the learning-rate
plateau rule (the paper's Eq. 7) and the exponential moving average of the weights."""
from __future__ import annotations

import math

import torch

from .config import Stage


def stage_at(stages: tuple[Stage, ...] | list[Stage], step: int, total: int) -> int:
    """Index of the stage that ``step`` falls in (a stage ends at ``until_step``, or at ``until`` × ``total``)."""
    f = step / max(total, 1)
    for i, s in enumerate(stages):
        if (step < s.until_step) if s.until_step is not None else (f < s.until):
            return i
    return len(stages) - 1


@torch.no_grad()
def ema_update(ema: torch.nn.Module, net: torch.nn.Module, decay: float) -> None:
    """Exponential moving average of parameters; buffers (BN statistics) are copied."""
    for pe, p in zip(ema.parameters(), net.parameters()):
        pe.mul_(decay).add_(p.detach(), alpha=1.0 - decay)
    for be, b in zip(ema.buffers(), net.buffers()):
        be.copy_(b)


class Plateau:
    """Halve the LR when the validation loss stops improving (Eq. 7); state is a plain dict."""

    def __init__(self, factor: float, patience: int, min_lr: float, threshold: float = 0.01):
        self.factor, self.patience, self.min_lr, self.threshold = factor, patience, min_lr, threshold
        self.best = math.inf
        self.bad = 0

    def step(self, value: float, optimizers: list[torch.optim.Optimizer]) -> bool:
        """Record a validation loss; returns True when the LR was reduced."""
        if value < self.best * (1.0 - self.threshold):
            self.best, self.bad = value, 0
            return False
        self.bad += 1
        if self.bad <= self.patience:
            return False
        self.bad = 0
        for opt in optimizers:
            for g in opt.param_groups:
                g["lr"] = max(self.min_lr, g["lr"] * self.factor)
        return True

    def reset(self) -> None:
        """Forget the best value (the validation changed, e.g. a new crop size)."""
        self.best, self.bad = math.inf, 0

    def state_dict(self) -> dict[str, float]:
        """The state to checkpoint."""
        return {"best": self.best, "bad": self.bad}

    def load_state_dict(self, d: dict[str, float]) -> None:
        """Restore :meth:`state_dict`."""
        self.best, self.bad = float(d["best"]), int(d["bad"])
