"""Capacity for strong smiles only: FiLM units that are exactly zero up to λ = 1.

Every weight of the smile network draws every strength, so a loss on the strong edits (the
statistics term at λ ≥ 1.5, ``training/tune_stats_floor.toml``) moves the λ = 1 edit with them
(docs/realism.md, twenty-second session: three times the term bought λ = 2 about 0.02 of realism
and cost λ = 1 0.03). This module gives each FiLM of the network (:class:`training.nets.FiLM`, the
λ-conditioning of the bottleneck and of every decoder level) :data:`THRESHOLDS`-many more hidden
units, ``relu(s − t)`` for thresholds ``t ≥ 1`` of the strength ``s`` the network sees, whose output
weights start at zero. Only those output weights learn (``[tune] parts = ["above"]``), so for
``s ≤ 1`` the network is the one it was, bit for bit, and above 1 it may change continuously
(piecewise linearly in ``s``: no jump as a slider moves). In the exported file the FiLM MLPs are
simply wider (the Gemm weights' shapes): the graph, its cost and the model contract are unchanged.
"""
from __future__ import annotations

import torch
from torch import nn

from .nets import FiLM

#: The strengths (as the network sees them, after the saturation) where the new units start.
THRESHOLDS = (1.0, 1.25, 1.5, 2.0, 2.5)


def films(net: nn.Module) -> list[FiLM]:
    """The network's FiLM layers, bottleneck first."""
    return [m for m in net.modules() if isinstance(m, FiLM)]


@torch.no_grad()
def widen(net: nn.Module, thresholds: tuple[float, ...] = THRESHOLDS) -> int:
    """Add one hidden unit ``relu(s − t)`` per threshold to every FiLM of ``net`` (in place), its
    output weights zero: the network's outputs do not change at any strength. Returns the number
    of hidden units each FiLM had before (the first new unit's index)."""
    if any(t < 1.0 for t in thresholds):
        raise ValueError("the new units must be zero up to s = 1: thresholds of 1 or more")
    return _add_units(net, thresholds)


@torch.no_grad()
def _add_units(net: nn.Module, thresholds: tuple[float, ...]) -> int:
    """Give every FiLM of ``net`` one more hidden unit ``relu(s − t)`` per threshold, output weights
    zero (in place; the network's ``cfg`` says its new width). Returns the first new unit's index."""
    first = None
    for film in films(net):
        lin0, lin2 = film.mlp[0], film.mlp[2]
        h, k = lin0.out_features, len(thresholds)
        first = h if first is None else first
        if h != first:
            raise ValueError("the network's FiLM layers have different widths")
        new0 = nn.Linear(1, h + k).to(lin0.weight)
        new0.weight.copy_(torch.cat([lin0.weight, torch.ones(k, 1).to(lin0.weight)]))
        new0.bias.copy_(torch.cat([lin0.bias, -torch.tensor(thresholds).to(lin0.bias)]))
        new2 = nn.Linear(h + k, lin2.out_features).to(lin2.weight)
        new2.weight.copy_(torch.cat([lin2.weight, torch.zeros(lin2.out_features, k).to(lin2.weight)], dim=1))
        new2.bias.copy_(lin2.bias)
        film.mlp[0], film.mlp[2] = new0, new2
    if first is None:
        raise ValueError("the network has no FiLM layers")
    cfg = getattr(net, "cfg", None)
    if cfg is not None:  # so that the network describes itself (MobileUNetConfig is frozen)
        from dataclasses import replace

        net.cfg = replace(cfg, film_hidden=first + len(thresholds))
    return first


def _learn_columns(net: nn.Module, first: int, count: int | None = None) -> list[nn.Parameter]:
    """Freeze every weight of ``net`` but the FiLMs' output weights, and of those let only the
    columns from ``first`` (``count`` of them; None: to the end) learn, by a gradient mask."""
    for p in net.parameters():
        p.requires_grad_(False)
    out = []
    for film in films(net):
        w = film.mlp[2].weight
        w.requires_grad_(True)
        mask = torch.zeros_like(w)
        mask[:, first : None if count is None else first + count] = 1.0
        w.register_hook(lambda g, m=mask: g * m)
        out.append(w)
    return out


def learn_above(net: nn.Module, first: int) -> list[nn.Parameter]:
    """Freeze every weight of ``net`` but the FiLMs' output weights, and of those let only the
    columns of the units from ``first`` on learn (a gradient mask): a model tuned so before keeps
    its own units as they are, and :func:`widen` gives it new ones. Returns the parameters to
    optimise."""
    return _learn_columns(net, first)



@torch.no_grad()
def hold_above(net: nn.Module, first: int, at: float, thresholds: tuple[float, ...] = THRESHOLDS) -> None:
    """Hold one round of units (from ``first``, one ``relu(s − t)`` per threshold, as :func:`widen`
    gave them) at what they add at strength ``at`` for every strength above it (in place): the unit
    at ``at`` takes minus the sum of the output weights of those below it, and those above it none.
    Up to ``at`` the network is what it was, bit for bit (the changed units are exactly zero there);
    above it that round's change stays as it is at ``at`` while the rest of the network goes on.
    Model 1.14.1: 1.14.0's round, tuned for λ = 2 only, held from the network's strength 2 on, so
    that a strength above 2 smiles more than 2 again (docs/realism.md, thirty-first session)."""
    ts = [float(t) for t in thresholds]
    if at not in ts:
        raise ValueError(f"a round can be held at one of its thresholds {ts} (got {at})")
    k = ts.index(at)
    below = [first + i for i, t in enumerate(ts) if t < at]
    above = [first + i for i, t in enumerate(ts) if t > at]
    for film in films(net):
        if film.mlp[2].weight.shape[1] < first + len(ts):
            raise ValueError("the network has no such round of units")
        w = film.mlp[2].weight
        w[:, first + k] = -w[:, below].sum(dim=1)
        w[:, above] = 0.0


# ------------------------------------------------------------------ a band of strengths around λ = 1

#: The band's units: relu(s − t) at its start, its middle and its end. Their output weights are tied
#: as ``k·(1, −2, 1)`` (:data:`BAND_TIE`), so that together they are a hat: zero up to the start,
#: rising to ``k·half`` at the middle, and zero again from the end on.
BAND = (0.5, 1.0, 1.5)
BAND_TIE = (1.0, -2.0, 1.0)


@torch.no_grad()
def widen_band(net: nn.Module, band: tuple[float, float, float] = BAND) -> int:
    """Add the three units of a hat over ``band`` (start, middle, end; the middle half-way) to every
    FiLM of ``net`` (in place), their output weights zero. Below the start and from the end on they
    sum to zero, so a model tuned through them (:func:`learn_band`, :func:`tie_band`) changes only
    between the two: λ = 1 and its neighbours, while the strong edits stay what they were (to float
    rounding) and the weak ones bit for bit. Returns the first new unit's index."""
    a, m, b = band
    if not (0.0 <= a < m < b) or abs((m - a) - (b - m)) > 1e-9:
        raise ValueError(f"a band is (start, middle, end) with the middle half-way, 0 ≤ start (got {band})")
    return _add_units(net, band)


def learn_band(net: nn.Module, first: int) -> list[nn.Parameter]:
    """Freeze every weight of ``net`` but the FiLMs' output weights of the band's three units (from
    ``first``, see :func:`widen_band`; a gradient mask). Call :func:`tie_band` after every optimiser
    step: Adam's per-weight steps would untie them."""
    return _learn_columns(net, first, 3)


@torch.no_grad()
def tie_band(net: nn.Module, first: int) -> None:
    """Project each FiLM's three band columns (from ``first``) onto ``k·(1, −2, 1)``, the nearest
    tied weights: the hat is zero outside its band again."""
    v = torch.tensor(BAND_TIE)
    for film in films(net):
        w = film.mlp[2].weight
        cols = w[:, first : first + 3]
        k = cols @ v.to(cols) / float(v.square().sum())
        w[:, first : first + 3] = k[:, None] * v.to(cols)[None, :]
