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
import time
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler

from .checkpoint import atomic_save, load_generator_state
from .config import Config, LossWeights, Stage, TrainConfig, load_config
from .dataset import SampleConfig, TeacherPairs, fixed_pairs, load_labels, neutral_rows, smiling_rows
from .losses import (
    PatchDiscriminator,
    feature_matching,
    hinge_d_loss,
    hinge_g_loss,
    mouth_region,
    reconstruction_terms,
    smile_ranking,
    uv_loss,
)
from .nets import build_net, count_macs, count_params, forward_all, set_atlas
from .prepare import load_prepared
from .schedule import Plateau, ema_update, stage_at
from .teacher import Teacher, teacher_from_config


def make_loader(crops, index, rows, real_rows, stage: Stage, batch: int, workers: int, seed: int, teacher: Teacher) -> DataLoader:
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


class Trainer:
    """One training run of ``recipe`` in ``run_dir``: :meth:`setup` (data, networks, optimisers),
    :meth:`resume` / :meth:`continue_from`, then :meth:`run`, which switches stages
    (:meth:`enter_stage`), takes steps (:meth:`step`), validates (:meth:`validate`) and
    checkpoints (:meth:`save_state`, :meth:`save_weights`)."""

    def __init__(self, cfg: Config, recipe: TrainConfig, run_dir: Path, device: torch.device, logf: TextIO):
        self.cfg, self.t, self.run_dir, self.device, self.logf = cfg, recipe, run_dir, device, logf
        self.stages = recipe.stages
        self.step_no, self.elapsed_before, self.best_val = 0, 0.0, math.inf
        self.plateau_stage: str | None = None  #: the stage the plateau rule tracks
        self.cur_stage, self.loader_it = -1, None
        self.val_cache: dict[tuple, dict[str, torch.Tensor]] = {}
        self.val_key: tuple = ()
        self.t_start = time.time()

    def log(self, rec: dict[str, Any]) -> None:
        """One JSON line to ``log.jsonl`` and stdout."""
        rec = {"time": time.strftime("%H:%M:%S"), **rec}
        self.logf.write(json.dumps(rec) + "\n")
        self.logf.flush()
        print(json.dumps(rec), flush=True)

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        """Load the prepared faces and pick the validation faces; build the networks and optimisers."""
        t, device = self.t, self.device
        self.crops, self.index = load_prepared(self.cfg)
        self.labels = load_labels(self.cfg.paths.cache_dir)
        self.rows = neutral_rows(self.index, self.labels, "train")
        self.real_rows = smiling_rows(self.index, self.labels, "train")
        val_rows = neutral_rows(self.index, None, "val", adult_age=1000)  # labelled neutrals only: stable across label updates
        rng = np.random.default_rng(t.seed)
        self.val_rows = np.sort(rng.choice(val_rows, min(t.val_faces, len(val_rows)), replace=False))
        self.net = build_net(t.arch, **t.net_kwargs()).to(device)
        self.ema = copy.deepcopy(self.net).eval()
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.disc = PatchDiscriminator(1, t.disc_width).to(device)
        self.opt_g = torch.optim.Adam(self.net.parameters(), lr=t.lr, betas=t.betas)
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=t.lr_d, betas=t.betas)
        self.plateau = Plateau(t.plateau_factor, t.plateau_patience, t.min_lr)
        self.classifier = None
        if any(s.weights.rank > 0 for s in self.stages):
            try:
                from .classifier import load_classifier

                self.classifier = load_classifier(self.cfg.classifier_path).to(device)
                for p in self.classifier.parameters():
                    p.requires_grad_(False)
            except Exception as exc:  # the ranking term is optional
                print(f"warning: smile classifier unavailable ({exc}); ranking loss off", flush=True)
        self.identity_nets: dict[int, torch.nn.Module] = {}
        self.use_identity = any(s.weights.id > 0 for s in self.stages)

    def resume(self, last: Path) -> None:
        """Continue from the full training state ``last.pt``."""
        st = torch.load(last, map_location=self.device, weights_only=False)
        for name in ("net", "ema", "disc", "opt_g", "opt_d", "plateau"):
            getattr(self, name).load_state_dict(st[name])
        self.step_no, self.elapsed_before = int(st["step"]), float(st["elapsed"])
        self.best_val, self.plateau_stage = float(st["best_val"]), st.get("plateau_stage")
        torch.set_rng_state(st["torch_rng"])
        self.log({"event": "resumed", "step": self.step_no, "elapsed_min": round(self.elapsed_before / 60, 1)})

    def continue_from(self, src: Path) -> None:
        """Start at the step of another run's weights checkpoint, with its weights and discriminator."""
        ck = torch.load(src, map_location=self.device, weights_only=False)
        missing = load_generator_state(self.net, ck["state"])
        load_generator_state(self.ema, ck["state"])
        self.step_no = int(ck["step"])
        other = src.parent / "last.pt"
        if other.exists():
            self.disc.load_state_dict(torch.load(other, map_location=self.device, weights_only=False)["disc"])
        self.log({"event": "continued", "from": str(src), "step": self.step_no,
                  "new_heads": sorted({k.rsplit(".", 1)[0] for k in missing}),
                  "disc_from": str(other) if other.exists() else None, "params": count_params(self.net)})

    def log_start(self, total: int) -> None:
        """The first line of a fresh run."""
        self.log({"event": "start", "arch": self.t.arch, "params": count_params(self.net), "macs_256": count_macs(self.net, 256),
                  "neutral_rows": len(self.rows), "real_rows": len(self.real_rows), "val_rows": len(self.val_rows),
                  "total_steps": total, "labels": self.labels is not None})

    # ------------------------------------------------------------------ checkpoints
    def _current(self) -> Stage:
        return self.stages[max(self.cur_stage, 0)]

    def save_state(self) -> None:
        """The full training state to ``last.pt`` (what ``--resume`` reads)."""
        atomic_save({
            "net": self.net.state_dict(), "ema": self.ema.state_dict(), "disc": self.disc.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(), "plateau": self.plateau.state_dict(),
            "step": self.step_no, "elapsed": self.elapsed_before + (time.time() - self.t_start), "best_val": self.best_val,
            "plateau_stage": self.plateau_stage, "torch_rng": torch.get_rng_state(),
            "arch": self.t.arch, "net_kwargs": self.t.net_kwargs(), "config": self.t.to_dict(),
            "train_size": self._current().size, "atlas": self._current().atlas,
        }, self.run_dir / "last.pt")

    def save_weights(self, path: Path, extra: dict[str, Any]) -> None:
        """The generator's EMA weights (what ``training.export`` reads)."""
        atomic_save({"arch": self.t.arch, "net_kwargs": self.t.net_kwargs(), "state": self.ema.state_dict(), "step": self.step_no,
                     "train_size": self._current().size, "atlas": self._current().atlas,
                     "config": self.t.to_dict(), **extra}, path)

    # ------------------------------------------------------------------ stages, steps, validation
    def enter_stage(self, si: int) -> None:
        """Switch to stage ``si``: weights of the stage that ended, its teacher, data, LR and validation pairs."""
        t, stage = self.t, self.stages[si]
        if self.cur_stage >= 0:
            ended = self.stages[self.cur_stage].name
            self.save_weights(self.run_dir / f"stage-{ended}.pt", {"stage": ended})
        batch = int(stage.batch_size or t.batch_size)
        teaching = stage.teacher_config(self.cfg.teacher)
        teacher = teacher_from_config(teaching, self.cfg.donor_path, drawn=stage.atlas)
        set_atlas(self.net, stage.atlas)
        set_atlas(self.ema, stage.atlas)
        self.loader_it = iter(make_loader(self.crops, self.index, self.rows, self.real_rows, stage, batch, t.num_workers,
                                          t.seed + self.step_no, teacher))
        self.cur_stage = si
        if self.plateau_stage != stage.name:
            # a new stage is a new problem (other λ range, losses, maybe size): its validation
            # uses only the λs it trains on, the plateau rule starts afresh from the base LR,
            # and best.pt tracks the best weights of the latest stage
            self.plateau.reset()
            self.best_val = math.inf
            self.plateau_stage = stage.name
            for opt, base in ((self.opt_g, t.lr), (self.opt_d, t.lr_d)):
                for g in opt.param_groups:
                    g["lr"] = base
        self.log({"event": "stage", "step": self.step_no, "stage": stage.name, "size": stage.size, "batch": batch,
                  "donors": "drawn" if stage.atlas else [stage.keep_donors, stage.donor_pool],
                  "lam": [stage.lam_min, stage.lam_max], "lr": self.opt_g.param_groups[0]["lr"]})
        lams = tuple(x for x in t.val_lams if stage.lam_min <= x <= stage.lam_max) or t.val_lams
        self.val_key = (stage.size, lams, teaching, stage.atlas)
        if self.val_key not in self.val_cache:
            pairs = fixed_pairs(self.crops, self.index["lm68"], self.val_rows, lams, stage.size, teacher)
            self.val_cache[self.val_key] = {k: v.to(self.device) for k, v in pairs.items()}

    def step(self, stage: Stage) -> dict[str, torch.Tensor]:
        """One generator step (and a discriminator step where the stage has GAN terms); returns the loss terms."""
        w, t = stage.weights, self.t
        b = {k: v.to(self.device, non_blocking=True) for k, v in next(self.loader_it).items()}
        self.net.train()
        o = forward_all(self.net, b["face"], b["strength"])
        terms = reconstruction_terms(b["face"], b["target"], b["flow"], b["mask"], o["rgb"], o["mask"], o["flow"], b["strength"])
        if "uv" in o:
            terms["uv"] = uv_loss(o["uv"], b["uv"], b["mask"])
        out = terms.pop("out")
        loss = sum(getattr(w, k) * v for k, v in terms.items())
        if w.adv > 0 or w.feat > 0:
            loss = self._gan_terms(w, b, out, terms, loss)
        if w.rank > 0 and self.classifier is not None:
            logit_out = self.classifier(out)
            with torch.no_grad():
                logit_in = self.classifier(b["face"])
            terms["rank"] = smile_ranking(logit_out, logit_in, b["strength"], t.rank_margin)
            loss = loss + w.rank * terms["rank"]
        if w.id > 0 and self.use_identity:
            loss = self._identity_term(w.id, stage.size, b["face"], out, terms, loss)
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), t.grad_clip)
        self.opt_g.step()
        ema_update(self.ema, self.net, t.ema_decay if self.step_no > 100 else 0.0)
        self.step_no += 1
        terms["loss"] = loss.detach()
        terms["_batch"] = torch.tensor(len(b["face"]))
        return terms

    def _gan_terms(self, w: LossWeights, b: dict[str, torch.Tensor], out: torch.Tensor, terms: dict[str, torch.Tensor],
                   loss: torch.Tensor) -> torch.Tensor:
        """Discriminator step on real smilers vs. the (detached) output, then the generator's adversarial
        and feature-matching terms (added to ``terms`` and to ``loss``, which is returned)."""
        disc = self.disc
        disc.train()
        d_real, _ = disc(mouth_region(b["real"]))
        d_fake, _ = disc(mouth_region(out.detach()))
        d_loss = hinge_d_loss(d_real, d_fake)
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
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
        return loss

    def _identity_term(self, weight: float, size: int, face: torch.Tensor, out: torch.Tensor,
                       terms: dict[str, torch.Tensor], loss: torch.Tensor) -> torch.Tensor:
        """dlib descriptor distance input → output, added to ``terms`` and to ``loss`` (returned); when
        unavailable the term is turned off for good."""
        try:
            if size not in self.identity_nets:
                from .identity import FaceDescriptor

                self.identity_nets[size] = FaceDescriptor(crop_size=size).to(self.device)
            fd = self.identity_nets[size]
            with torch.no_grad():
                d_in = fd(face)
            terms["id"] = (fd(out) - d_in).norm(dim=1).mean()
            return loss + weight * terms["id"]
        except Exception as exc:
            print(f"warning: identity loss unavailable ({exc}); turned off", flush=True)
            self.use_identity = False
            return loss

    def validate(self, stage: Stage) -> None:
        """Validation losses of the EMA weights; the plateau rule; ``best.pt`` when they improved."""
        v = validation_loss(self.ema, self.val_cache[self.val_key])
        reduced = self.plateau.step(v["total"], [self.opt_g, self.opt_d])
        improved = v["total"] < self.best_val
        if improved:
            self.best_val = v["total"]
            self.save_weights(self.run_dir / "best.pt", {"val": v, "size": stage.size})
        self.log({"event": "val", "step": self.step_no, "size": stage.size, **{k: round(x, 5) for k, x in v.items()},
                  "lr_reduced": reduced, "best": improved, "lams": list(self.val_key[1])})

    # ------------------------------------------------------------------ the loop
    def run(self, total: int, max_minutes: float, benchmark: int = 0) -> int:
        """Train up to step ``total`` or for ``max_minutes``; ``benchmark`` > 0 times that many steps and stops."""
        t = self.t
        self.t_start = last_ckpt = t_log = time.time()
        acc: dict[str, float] = {}
        acc_n, bench_left = 0, benchmark
        while self.step_no < total:
            si = stage_at(self.stages, self.step_no, total)
            stage = self.stages[si]
            if si != self.cur_stage:
                self.enter_stage(si)
            t_step = time.time()
            terms = self.step(stage)
            batch = int(terms.pop("_batch"))
            for k, v in terms.items():
                acc[k] = acc.get(k, 0.0) + float(v.detach())
            acc_n += 1
            if bench_left:
                bench_left -= 1
                print(f"bench step {self.step_no}: {time.time() - t_step:.2f}s compute, batch {batch}", flush=True)
                if bench_left == 0:
                    self.log({"event": "benchmark", "samples_per_s": round(benchmark * batch / (time.time() - self.t_start), 2)})
                    return 0
            if self.step_no % t.log_every == 0:
                dt = time.time() - t_log
                self.log({"step": self.step_no, "stage": stage.name, "lr": self.opt_g.param_groups[0]["lr"],
                          "samples_per_s": round(acc_n * batch / dt, 2), **{k: round(v / acc_n, 5) for k, v in acc.items()},
                          "alphas": [round(a, 3) for a in getattr(self.net, "alphas", [])]})
                acc, acc_n, t_log = {}, 0, time.time()
            if self.step_no % t.val_every == 0 or self.step_no == total:
                self.validate(stage)
                t_log = time.time()
            if time.time() - last_ckpt > t.checkpoint_minutes * 60:
                self.save_state()
                last_ckpt = time.time()
            if (time.time() - self.t_start) / 60 > max_minutes:
                self.log({"event": "budget", "step": self.step_no, "minutes": round((time.time() - self.t_start) / 60, 1)})
                break
        self.save_state()
        name = self.stages[self.cur_stage].name if self.cur_stage >= 0 else None
        self.save_weights(self.run_dir / "final.pt", {"stage": name})
        if self.step_no >= total:
            self.save_weights(self.run_dir / f"stage-{name}.pt", {"stage": name})
        self.log({"event": "stopped", "step": self.step_no, "total_steps": total, "checkpoint": str(self.run_dir / "last.pt")})
        return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m training train [--config PATH] [--resume | --continue-from CKPT] [--run NAME] [--max-minutes M] [--total-steps N]``."""
    ap = argparse.ArgumentParser(prog="python -m training train", description="train the smile network")
    ap.add_argument("--config", default=None, help="config TOML merged over training/config.toml")
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
    recipe = cfg.train_recipe(args.gpu)
    device = torch.device("cuda" if args.gpu else "cpu")
    torch.set_num_threads(recipe.threads)
    torch.manual_seed(recipe.seed)
    total = int(args.total_steps or recipe.total_steps)
    max_minutes = float(args.max_minutes if args.max_minutes is not None else recipe.max_minutes)
    run_dir = cfg.cache / "runs" / (args.run or recipe.run_name)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "log.jsonl", "a") as logf:
        trainer = Trainer(cfg, recipe, run_dir, device, logf)
        trainer.setup()
        if args.resume and (run_dir / "last.pt").exists():
            trainer.resume(run_dir / "last.pt")
        elif args.continue_from:
            trainer.continue_from(Path(args.continue_from))
        else:
            trainer.log_start(total)
        return trainer.run(total, max_minutes, args.benchmark)
