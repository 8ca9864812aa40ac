"""``python -m training train``: train the smile network against the teacher, with a curriculum.

Everything comes from ``[train]`` in config.toml (``[[train.stages]]`` is the
curriculum; ``[train.gpu]`` overrides for a GPU).  The run lives in
``cache_dir/runs/<run_name>/``:

* ``last.pt``     the full training state, rewritten atomically every
                  ``checkpoint_minutes`` and at the end (``--resume`` continues from it)
* ``best.pt``     generator (EMA) weights with the lowest validation loss
* ``stage-<name>.pt`` generator (EMA) weights at the end of each stage
* ``log.jsonl``   one JSON object per logged step / validation

Stages end at ``until_step`` or a fraction ``until`` of ``total_steps``, and may override the
teacher's donors (``keep_donors``, ``donor_pool``), mix in smiling inputs (``smiler_p``) or,
with ``atlas = true``, switch the teacher to the drawn mouth of ``training.teeth`` and the net's
RGB to its :class:`~training.nets.TeethAtlas` (plus the ``uv`` loss on its picture coordinates);
the learning rate restarts at each stage and is halved when
the validation loss has not improved for ``plateau_patience`` validations
(the paper's adaptive rule, Eq. 7).

``--continue-from runs/<other>/stage-<name>.pt`` starts a new run at that checkpoint's step with
its weights (heads added since, e.g. the TeethAtlas, keep their fresh initialisation, as they
would in one run from step 0), fresh optimisers and the other run's discriminator: how a run
goes on after stages were added to the recipe.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, RandomSampler

from .config import cache_dir, load_config
from .dataset import SampleConfig, TeacherPairs, fixed_pairs, neutral_rows, smiling_rows
from .losses import (
    LossWeights,
    PatchDiscriminator,
    feature_matching,
    hinge_d_loss,
    hinge_g_loss,
    mouth_region,
    reconstruction_terms,
    smile_ranking,
    uv_loss,
)
from .nets import build_net, count_macs, count_params


@dataclass
class Stage:
    """One curriculum stage (a ``[[train.stages]]`` table)."""

    name: str
    until: float = 1.0  #: fraction of total_steps at which the stage ends
    until_step: int | None = None  #: or the step at which it ends (takes precedence over ``until``)
    size: int = 128
    lam_min: float = 0.0
    lam_max: float = 1.5
    batch_size: int | None = None
    #: teacher overrides for this stage (default: ``[teacher]`` in config.toml)
    keep_donors: int | None = None
    donor_pool: int | None = None
    #: probability of a real smiling input (the teacher then mostly keeps its teeth)
    smiler_p: float = 0.0
    #: the teacher pastes the drawn mouth (``training.teeth``) and the net draws its RGB by
    #: sampling the same picture (``nets.TeethAtlas``; needs ``[train.net] teeth_atlas = true``)
    atlas: bool = False
    #: how the teacher moves the landmarks: "linear" or "real" (``training.geometry``); default ``[teacher]``
    geometry: str | None = None
    #: the teacher's mouth opacity ramp (``Teacher.open_ramp``); default ``[teacher] open_ramp``
    open_ramp: tuple[float, float] | None = None
    weights: LossWeights = field(default_factory=LossWeights)

    def teacher(self):
        """The stage's teacher when it overrides the donor settings, else ``None`` (the default teacher)."""
        from .teacher import Teacher

        if self.atlas:
            return Teacher(donors="drawn", geometry=self.geometry, open_ramp=self.open_ramp)
        if self.keep_donors is None and self.donor_pool is None and self.geometry is None and self.open_ramp is None:
            return None
        return Teacher(keep_donors=self.keep_donors, donor_pool=self.donor_pool, geometry=self.geometry,
                       open_ramp=self.open_ramp)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Stage":
        d = dict(d)
        w = LossWeights.from_dict(d.pop("weights", {}))
        return cls(weights=w, **d)


def train_settings(cfg: dict[str, Any], gpu: bool) -> dict[str, Any]:
    """``[train]`` with ``[train.gpu]`` merged over it when training on a GPU."""
    t = copy.deepcopy(cfg.get("train", {}))
    g = t.pop("gpu", {})
    if gpu:
        t.update(g)
    if "stages" not in t or not t["stages"]:
        raise ValueError("config has no [[train.stages]]")
    return t


def stage_at(stages: list[Stage], step: int, total: int) -> int:
    """Index of the stage that ``step`` falls in."""
    f = step / max(total, 1)
    for i, s in enumerate(stages):
        if (step < s.until_step) if s.until_step is not None else (f < s.until):
            return i
    return len(stages) - 1


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file, then rename over ``path``."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


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
        return {"best": self.best, "bad": self.bad}

    def load_state_dict(self, d: dict[str, float]) -> None:
        self.best, self.bad = float(d["best"]), int(d["bad"])


def load_labels(cfg: dict[str, Any]) -> dict[str, np.ndarray] | None:
    """The classifier's labels (``cache_dir/labels.npz``) if they exist."""
    p = cache_dir(cfg) / "labels.npz"
    if not p.exists():
        return None
    with np.load(p) as z:
        return {k: z[k] for k in z.files}


def make_loader(crops, index, rows, real_rows, stage: Stage, batch: int, workers: int, seed: int, teacher=None) -> DataLoader:
    """An endless DataLoader of teacher pairs for ``stage``."""
    ds = TeacherPairs(crops, index["lm68"], rows, real_rows,
                      SampleConfig(size=stage.size, lam_min=stage.lam_min, lam_max=stage.lam_max, smiler_p=stage.smiler_p),
                      teacher=teacher, seed=seed)
    sampler = RandomSampler(ds, replacement=True, num_samples=10 ** 9)
    kw: dict[str, Any] = {"num_workers": workers}
    if workers > 0:
        kw.update(prefetch_factor=4, persistent_workers=False)
    return DataLoader(ds, batch_size=batch, sampler=sampler, drop_last=True, **kw)


def validation_loss(net: torch.nn.Module, val: dict[str, torch.Tensor], batch: int = 32) -> dict[str, float]:
    """Teacher-matching losses of ``net`` (eval mode) on the fixed validation pairs."""
    net.eval()
    sums = {"l1": 0.0, "ssim": 0.0, "flow": 0.0, "rgb": 0.0, "mask_mouth": 0.0, "uv": 0.0}
    n = len(val["face"])
    with torch.no_grad():
        for a in range(0, n, batch):
            sl = slice(a, a + batch)
            o = forward_all(net, val["face"][sl], val["strength"][sl])
            rgb, mask, flow = o["rgb"], o["mask"], o["flow"]
            t = reconstruction_terms(val["face"][sl], val["target"][sl], val["flow"][sl], val["mask"][sl], rgb, mask, flow, val["strength"][sl])
            t["uv"] = uv_loss(o["uv"], val["uv"][sl], val["mask"][sl]) if "uv" in o else rgb.new_zeros(())
            # how far the mask turns on where the teacher opened the mouth (0 = warp only, no teeth)
            tm = val["mask"][sl]
            t["mask_mouth"] = (mask * tm).sum() / tm.sum().clamp_min(1e-6)
            k = len(val["face"][sl])
            for key in sums:
                sums[key] += float(t[key]) * k
    out = {k: v / n for k, v in sums.items()}
    out["total"] = 10.0 * out["l1"] + out["ssim"] + out["flow"] + out["rgb"] + out["uv"]
    return out


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


def load_generator_state(net: torch.nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Load weights, allowing only the :class:`~training.nets.TeethAtlas` heads to be missing
    (weights from before they existed: those heads keep their fresh initialisation, exactly as
    in a from-scratch run, where they are unused until the first ``atlas`` stage).  Returns the missing keys."""
    res = net.load_state_dict(state, strict=False)
    bad = [k for k in res.missing_keys if ".atlas." not in k] + list(res.unexpected_keys)
    if bad:
        raise RuntimeError(f"checkpoint does not fit the network: {bad[:6]}")
    return list(res.missing_keys)


def main(argv: list[str] | None = None) -> int:
    """``python -m training train [--config PATH] [--resume | --continue-from CKPT] [--run NAME] [--max-minutes M] [--total-steps N]``."""
    ap = argparse.ArgumentParser(prog="python -m training train", description="train the smile network")
    ap.add_argument("--config", default=None, help="config TOML (default training/config.toml)")
    ap.add_argument("--run", default=None, help="run name (default [train] run_name)")
    ap.add_argument("--resume", action="store_true", help="continue from runs/<run>/last.pt if it exists")
    ap.add_argument("--continue-from", default=None, metavar="CKPT",
                    help="start this run at the step of a weights checkpoint (stage-*.pt of an earlier run of the same "
                         "recipe) with its weights, fresh optimisers, and the discriminator of that run's last.pt if any")
    ap.add_argument("--max-minutes", type=float, default=None, help="wall-clock budget of this invocation")
    ap.add_argument("--total-steps", type=int, default=None, help="override [train] total_steps")
    ap.add_argument("--gpu", action="store_true", help="train on CUDA with the [train.gpu] recipe")
    ap.add_argument("--benchmark", type=int, default=0, metavar="STEPS", help="time STEPS steps of each stage's setup, then exit")
    args = ap.parse_args(argv)

    cfg = load_config(args.config)
    t = train_settings(cfg, args.gpu)
    device = torch.device("cuda" if args.gpu else "cpu")
    torch.set_num_threads(int(t.get("threads", 2)))
    seed = int(t.get("seed", 1234))
    torch.manual_seed(seed)
    stages = [Stage.from_dict(s) for s in t["stages"]]
    total = int(args.total_steps or t.get("total_steps", 4000))
    max_minutes = float(args.max_minutes if args.max_minutes is not None else t.get("max_minutes", 80))
    run_dir = cache_dir(cfg) / "runs" / (args.run or t.get("run_name", "default"))
    run_dir.mkdir(parents=True, exist_ok=True)
    logf = open(run_dir / "log.jsonl", "a")

    def log(rec: dict[str, Any]) -> None:
        rec = {"time": time.strftime("%H:%M:%S"), **rec}
        logf.write(json.dumps(rec) + "\n")
        logf.flush()
        print(json.dumps(rec), flush=True)

    from .prepare import load_prepared

    crops, index = load_prepared(cfg)
    labels = load_labels(cfg)
    rows = neutral_rows(index, labels, "train")
    real_rows = smiling_rows(index, labels, "train")
    val_rows = neutral_rows(index, None, "val", adult_age=1000)  # labelled neutrals only: stable across label updates
    rng = np.random.default_rng(seed)
    val_rows = np.sort(rng.choice(val_rows, min(int(t.get("val_faces", 16)), len(val_rows)), replace=False))
    val_lams = tuple(float(x) for x in t.get("val_lams", [-1.0, 1.0, 2.0, 3.0]))

    arch = t.get("arch", "mobile_unet")
    net_kwargs = dict(t.get("net", {}))
    if "widths" in net_kwargs:
        net_kwargs["widths"] = tuple(net_kwargs["widths"])
    net = build_net(arch, **net_kwargs).to(device)
    ema = copy.deepcopy(net).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    disc = PatchDiscriminator(1, int(t.get("disc_width", 32))).to(device)
    betas = tuple(t.get("betas", [0.5, 0.999]))
    opt_g = torch.optim.Adam(net.parameters(), lr=float(t.get("lr", 1e-3)), betas=betas)
    opt_d = torch.optim.Adam(disc.parameters(), lr=float(t.get("lr_d", 4e-4)), betas=betas)
    plateau = Plateau(float(t.get("plateau_factor", 0.5)), int(t.get("plateau_patience", 2)), float(t.get("min_lr", 1e-5)))
    ema_decay = float(t.get("ema_decay", 0.998))

    classifier = None
    if any(s.weights.rank > 0 for s in stages):
        try:
            from .classifier import load_classifier

            classifier = load_classifier().to(device)
            for p in classifier.parameters():
                p.requires_grad_(False)
        except Exception as exc:  # the ranking term is optional
            print(f"warning: smile classifier unavailable ({exc}); ranking loss off", flush=True)
    identity_nets: dict[int, torch.nn.Module] = {}
    use_identity = any(s.weights.id > 0 for s in stages)

    step, elapsed_before, plateau_stage = 0, 0.0, None  # plateau_stage: the stage the plateau rule tracks
    best_val = math.inf
    last = run_dir / "last.pt"
    if args.resume and last.exists():
        st = torch.load(last, map_location=device, weights_only=False)
        net.load_state_dict(st["net"])
        ema.load_state_dict(st["ema"])
        disc.load_state_dict(st["disc"])
        opt_g.load_state_dict(st["opt_g"])
        opt_d.load_state_dict(st["opt_d"])
        plateau.load_state_dict(st["plateau"])
        step, elapsed_before = int(st["step"]), float(st["elapsed"])
        best_val, plateau_stage = float(st["best_val"]), st.get("plateau_stage")
        torch.set_rng_state(st["torch_rng"])
        log({"event": "resumed", "step": step, "elapsed_min": round(elapsed_before / 60, 1)})
    elif args.continue_from:
        src = Path(args.continue_from)
        ck = torch.load(src, map_location=device, weights_only=False)
        missing = load_generator_state(net, ck["state"])
        load_generator_state(ema, ck["state"])
        step = int(ck["step"])
        other = src.parent / "last.pt"
        if other.exists():
            disc.load_state_dict(torch.load(other, map_location=device, weights_only=False)["disc"])
        log({"event": "continued", "from": str(src), "step": step, "new_heads": sorted({k.rsplit(".", 1)[0] for k in missing}),
             "disc_from": str(other) if other.exists() else None, "params": count_params(net)})
    else:
        log({"event": "start", "arch": arch, "params": count_params(net), "macs_256": count_macs(net, 256),
             "neutral_rows": len(rows), "real_rows": len(real_rows), "val_rows": len(val_rows), "total_steps": total,
             "labels": labels is not None})

    def save_state() -> None:
        atomic_save({
            "net": net.state_dict(), "ema": ema.state_dict(), "disc": disc.state_dict(),
            "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "plateau": plateau.state_dict(),
            "step": step, "elapsed": elapsed_before + (time.time() - t_start), "best_val": best_val,
            "plateau_stage": plateau_stage, "torch_rng": torch.get_rng_state(),
            "arch": arch, "net_kwargs": net_kwargs, "config": t, "train_size": stages[max(cur_stage, 0)].size,
            "atlas": stages[max(cur_stage, 0)].atlas,
        }, last)

    def save_weights(path: Path, extra: dict[str, Any]) -> None:
        atomic_save({"arch": arch, "net_kwargs": net_kwargs, "state": ema.state_dict(), "step": step,
                     "train_size": stages[max(cur_stage, 0)].size, "atlas": stages[max(cur_stage, 0)].atlas,
                     "config": t, **extra}, path)

    t_start = time.time()
    last_ckpt = time.time()
    ckpt_every = float(t.get("checkpoint_minutes", 3)) * 60
    log_every = int(t.get("log_every", 20))
    val_every = int(t.get("val_every", 200))
    workers = int(t.get("num_workers", 1))
    val_cache: dict[tuple, dict[str, torch.Tensor]] = {}
    cur_stage, loader_it = -1, None
    acc: dict[str, float] = {}
    acc_n, t_log = 0, time.time()
    bench_left = args.benchmark

    while step < total:
        si = stage_at(stages, step, total)
        stage = stages[si]
        if si != cur_stage:
            if cur_stage >= 0:
                save_weights(run_dir / f"stage-{stages[cur_stage].name}.pt", {"stage": stages[cur_stage].name})
            batch = int(stage.batch_size or t.get("batch_size", 16))
            stage_teacher = stage.teacher()
            set_atlas(net, stage.atlas)
            set_atlas(ema, stage.atlas)
            loader_it = iter(make_loader(crops, index, rows, real_rows, stage, batch, workers, seed + step, stage_teacher))
            cur_stage = si
            if plateau_stage != stage.name:
                # a new stage is a new problem (other λ range, losses, maybe size): its validation
                # uses only the λs it trains on, the plateau rule starts afresh from the base LR,
                # and best.pt tracks the best weights of the latest stage
                plateau.reset()
                best_val = math.inf
                plateau_stage = stage.name
                for opt, base in ((opt_g, float(t.get("lr", 1e-3))), (opt_d, float(t.get("lr_d", 4e-4)))):
                    for g in opt.param_groups:
                        g["lr"] = base
            log({"event": "stage", "step": step, "stage": stage.name, "size": stage.size, "batch": batch,
                 "donors": "drawn" if stage.atlas else [stage.keep_donors, stage.donor_pool],
                 "lam": [stage.lam_min, stage.lam_max], "lr": opt_g.param_groups[0]["lr"]})
            stage_lams = tuple(x for x in val_lams if stage.lam_min <= x <= stage.lam_max) or val_lams
            val_key = (stage.size, stage_lams, stage.keep_donors, stage.donor_pool, stage.atlas)
            if val_key not in val_cache:
                val_cache[val_key] = {k: v.to(device) for k, v in
                                      fixed_pairs(crops, index["lm68"], val_rows, stage_lams, stage.size, stage_teacher).items()}
        w = stage.weights
        b = {k: v.to(device, non_blocking=True) for k, v in next(loader_it).items()}
        t_step = time.time()
        net.train()
        o = forward_all(net, b["face"], b["strength"])
        rgb, mask, flow = o["rgb"], o["mask"], o["flow"]
        terms = reconstruction_terms(b["face"], b["target"], b["flow"], b["mask"], rgb, mask, flow, b["strength"])
        if "uv" in o:
            terms["uv"] = uv_loss(o["uv"], b["uv"], b["mask"])
        out = terms.pop("out")
        loss = sum(getattr(w, k) * v for k, v in terms.items())
        use_gan = w.adv > 0 or w.feat > 0
        if use_gan:
            # discriminator step on real smilers vs. the (detached) output
            disc.train()
            d_real, _ = disc(mouth_region(b["real"]))
            d_fake, _ = disc(mouth_region(out.detach()))
            d_loss = hinge_d_loss(d_real, d_fake)
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            terms["d"] = d_loss.detach()
            for p in disc.parameters():
                p.requires_grad_(False)
            f_logits, f_feats = disc(mouth_region(out))
            if w.adv > 0:
                terms["adv"] = hinge_g_loss(f_logits)
                loss = loss + w.adv * terms["adv"]
            if w.feat > 0:
                _, t_feats = disc(mouth_region(b["target"]))
                terms["feat"] = feature_matching(f_feats, t_feats)
                loss = loss + w.feat * terms["feat"]
            for p in disc.parameters():
                p.requires_grad_(True)
        if w.rank > 0 and classifier is not None:
            logit_out = classifier(out)
            with torch.no_grad():
                logit_in = classifier(b["face"])
            terms["rank"] = smile_ranking(logit_out, logit_in, b["strength"], float(t.get("rank_margin", 0.5)))
            loss = loss + w.rank * terms["rank"]
        if w.id > 0 and use_identity:
            try:
                if stage.size not in identity_nets:
                    from .identity import FaceDescriptor

                    identity_nets[stage.size] = FaceDescriptor(crop_size=stage.size).to(device)
                fd = identity_nets[stage.size]
                with torch.no_grad():
                    d_in = fd(b["face"])
                terms["id"] = (fd(out) - d_in).norm(dim=1).mean()
                loss = loss + w.id * terms["id"]
            except Exception as exc:
                print(f"warning: identity loss unavailable ({exc}); turned off", flush=True)
                use_identity = False
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), float(t.get("grad_clip", 5.0)))
        opt_g.step()
        ema_update(ema, net, ema_decay if step > 100 else 0.0)
        step += 1
        terms["loss"] = loss.detach()
        for k, v in terms.items():
            acc[k] = acc.get(k, 0.0) + float(v.detach())
        acc_n += 1
        if bench_left:
            bench_left -= 1
            print(f"bench step {step}: {time.time() - t_step:.2f}s compute, batch {len(b['face'])}", flush=True)
            if bench_left == 0:
                log({"event": "benchmark", "samples_per_s": round(args.benchmark * len(b["face"]) / (time.time() - t_start), 2)})
                return 0

        if step % log_every == 0:
            dt = time.time() - t_log
            log({"step": step, "stage": stage.name, "lr": opt_g.param_groups[0]["lr"],
                 "samples_per_s": round(acc_n * len(b["face"]) / dt, 2),
                 **{k: round(v / acc_n, 5) for k, v in acc.items()},
                 "alphas": [round(a, 3) for a in getattr(net, "alphas", [])]})
            acc, acc_n, t_log = {}, 0, time.time()
        if step % val_every == 0 or step == total:
            v = validation_loss(ema, val_cache[val_key])
            reduced = plateau.step(v["total"], [opt_g, opt_d])
            improved = v["total"] < best_val
            if improved:
                best_val = v["total"]
                save_weights(run_dir / "best.pt", {"val": v, "size": stage.size})
            log({"event": "val", "step": step, "size": stage.size, **{k: round(x, 5) for k, x in v.items()},
                 "lr_reduced": reduced, "best": improved, "lams": list(val_key[1])})
            t_log = time.time()
        if time.time() - last_ckpt > ckpt_every:
            save_state()
            last_ckpt = time.time()
        if (time.time() - t_start) / 60 > max_minutes:
            log({"event": "budget", "step": step, "minutes": round((time.time() - t_start) / 60, 1)})
            break
    save_state()
    save_weights(run_dir / "final.pt", {"stage": stages[cur_stage].name if cur_stage >= 0 else None})
    if step >= total:
        save_weights(run_dir / f"stage-{stages[cur_stage].name}.pt", {"stage": stages[cur_stage].name})
    log({"event": "stopped", "step": step, "total_steps": total, "checkpoint": str(last)})
    return 0
