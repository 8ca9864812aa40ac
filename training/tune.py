"""``python -m training tune``: tune a shipped model against real smiles, with the whole model in the loop.

The smile network learned to imitate its teacher, and the teacher's own targets are told from
real smiles by the realism test almost as easily as the network's (docs/realism.md: the best
teacher scores 0.90 / 0.97). This step goes past the teacher. It rebuilds the model's smile
network in PyTorch from the file (:mod:`training.onnx_weights`), runs the *whole* merged model as
the engine does (saturating strength, shade, mouth network, composite), and trains the smile
network's weights and one change of the shade field against real smiles of the train split:

* **adversary**: a small CNN (:class:`LowerFaceCritic`, one logit per face) sees the grey lower
  face (the realism test's window, :data:`training.realism.WINDOW`) of the edited neutral faces
  (λ in ``[tune] lam``) and of real smiles of the same stratum (source, grey or colour, face
  size), and the network learns to fool it. It is another judge than the realism test's (HOG +
  LBP and a logistic regression), which is not used in training;
* **anchor**: the flow (in crop pixels, / 8) and the mask stay near the model's own at the same λ,
  so identity and λ < 0 (``lam_neg``, anchor only) are kept and the geometry can move only where it
  buys realism; ``hold_opening`` weighs them more inside the model's own opening
  (:func:`anchor_weight`), so the network cannot close the mouth to please the critic;
* **rank**: the smile classifier's logit must rise with λ (:func:`training.losses.smile_ranking`);
  with ``w_floor`` > 0 the strong edits' logit is also held at ``smile_floor`` or above
  (:func:`training.losses.smile_floor`);
* **reach** (``w_reach`` > 0): the edits at ``reach_low`` ≤ λ ≤ ``reach_high`` must read, by the engine's
  own measure (the input's face mesh landmarks moved by the edit's flow), as at least ``reach_share``
  × λ of a smile (:func:`training.losses.smile_reach`): half the λ = 1 edits of model 1.12.0 read as
  less than half a typical smile, and those are the ones the realism test tells most surely;
* **shade**: the shade field (one for everyone, model contract 2) may change by a smooth map
  (``shade_grid``² upsampled), with an L2 cost;
* **identity** (``w_identity`` > 0): dlib's descriptor distance between each judged edit and its
  input (:class:`training.identity.FaceDescriptor`, frozen; what ``evaluate`` measures).
* **stats** (``w_stat`` > 0): the edits' soft HOG of the lower face (and of its fine band; with
  ``stat_lbp`` > 0 their soft LBP histograms too) pulled towards that of real smiles of the train
  split, by their mean or their maximum mean discrepancy (:mod:`training.hog_stats`; ``stat_from``
  leaves out the weaker edits). With ``w_adv = 0`` no
  discriminator learns at all (model 1.11.0's recipe, ``training/tune_stats.toml``).

``[tune] parts`` says what learns: by default the smile network and the shade field, with the
mouth network frozen (its own training is ``python -m training mouth``). With ``"above"`` instead of
``"net"`` only new FiLM units of the smile network learn, units that are exactly zero up to λ = 1
(:mod:`training.film_above`): the strong edits change and the λ = 1 edit stays the source's, bit
for bit; with ``"band"`` only units that together are a hat over λ = 0.5–1.5 learn (zero outside it),
so λ = 1 changes and the weak and strong edits stay the source's. With ``"mouth"`` the mouth network learns too, in the domain it works in at inference (the opening the warp makes in
a neutral face, which its self-supervised training never shows), its fill held near its own
(``w_fill`` on the grey level, ``w_fill_chroma`` on the colour); ``disc_window`` / ``disc_size``
then point the discriminator at the mouth. With ``"crease"`` a crease network (:mod:`training.crease`:
a per-face fine log gain of the lower face, after the transport) learns, added to a model that has
none, its gain held small by ``w_crease``; the export appends it to the graph. The run lives in
``cache/tune/<name>/`` (``last.pt``, rewritten every ``checkpoint_minutes``; ``--resume``
continues it); ``--export OUT.onnx --version V`` writes the model with the tuned weights over the
source file's, its graph otherwise unchanged.

``--device cuda`` trains on a lent GPU (a background thread draws and pins the batches, as uint8
crops; the GPU makes the network's input). The prepared crops do not travel there: ``python -m
training pack`` / ``unpack`` carry the rows this run draws from as their source photos, and
``bundle`` / ``restore`` (:mod:`training.snapshots`) bring the snapshots back
(``tools/gpu-tune.sh`` runs it all there).
"""
from __future__ import annotations

import argparse
import copy
import functools
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from smilecore.digest import file_sha256

from .config import TuneConfig, get_logger, load_config
from .identity import FaceDescriptor, identity_distance
from .losses import composite, hinge_d_loss, hinge_g_loss, smile_floor, smile_ranking, smile_reach

#: The generator's loss terms, each weighted by ``[tune] w_<term>`` when it is computed.
LOSS_TERMS = ("adv", "anchor", "rank", "floor", "reach", "shade", "fill", "fill_chroma", "identity", "crease", "stat")

#: (height, width) the discriminator sees the lower-face window at, unless ``[tune] disc_size`` says otherwise.
DISC_PATCH = (64, 96)


class MergedModel(nn.Module):
    """A merged model file (smile network + shade + mouth network [+ transported shade]) as one PyTorch module.

    ``forward(face, λ)`` returns the edited crop (as the engine composites it, without the
    engine's keep-your-own-teeth rule) and the smile network's ``mask`` and ``flow``."""

    def __init__(self, path: Path, mouth: Path | None = None, shade_grid: int = 32):
        super().__init__()
        import onnx
        from onnx import numpy_helper

        from smilecore import contract

        from . import shade
        from .mouth_attach import META_SIGMA, load_mouth, mouth_from_model
        from .mouth_net import SIGMA_PX
        from .onnx_weights import net_from_onnx

        model = onnx.load(str(path))
        meta = {p.key: p.value for p in model.metadata_props}
        if meta.get(contract.META_CONTRACT) != contract.CONTRACT_SHADE or "smile.mouth" not in meta:
            raise SystemExit(f"error: {path} is not a model with a shade output and a mouth network (as 1.4.0)")
        self.size = int(meta[contract.META_SIZE])
        self.net, self.wmap = net_from_onnx(model)
        self.train_size = self.size // 2
        v = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        self.register_buffer("field", torch.from_numpy(v[shade.FIELD].astype(np.float32)).reshape(1, 1, self.size, self.size))
        self.gain, self.shade_max = float(v[shade.GAIN_NAME]), float(v[shade.MAX_NAME])
        self.knee, self.soft = float(v[shade.KNEE_NAME]), float(v[shade.SOFT_NAME])
        self.shade_delta = nn.Parameter(torch.zeros(1, 1, shade_grid, shade_grid))
        self.fill = load_mouth(mouth)[0] if mouth is not None else mouth_from_model(model)
        own = float(meta.get(META_SIGMA, SIGMA_PX))
        if self.fill.sigma_px != own:  # the export writes the weights into this graph, whose frame is fixed
            raise SystemExit(f"error: {mouth} draws in a mouth frame of {self.fill.sigma_px:g} px, {path.name}'s graph in "
                             f"{own:g}: attach it to the model without a mouth first (python -m training mouth-attach)")
        for p in self.fill.parameters():
            p.requires_grad_(False)
        # the per-face shade transported to real smiles (model 1.5.0 on; training.transport), kept
        # as fitted to the file's own network: it has no weights to learn
        from .transport import transport_from_model

        self.transport = transport_from_model(model)
        # the per-face fine shade of the lower face (training.crease), when the file has one or
        # ``add_crease`` gives it one
        from .crease import crease_from_model

        self.crease = crease_from_model(model)
        self.source = path
        self.name = meta.get(contract.META_NAME, "smile-mobileunet")

    def strength(self, lam: torch.Tensor) -> torch.Tensor:
        """What the network sees: λ up to the knee, then knee + soft·tanh((λ − knee)/soft)."""
        over = (lam - self.knee).clamp(min=0.0)
        return lam - over + self.soft * torch.tanh(over / self.soft)

    def shade_field(self) -> torch.Tensor:
        """The field with its learned change."""
        return self.field + F.interpolate(self.shade_delta, size=(self.size, self.size), mode="bicubic", align_corners=False)

    def mask_flow(self, face: torch.Tensor, lam: torch.Tensor, net: nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The smile network's (or ``net``'s) mask and flow at the model's size, as the exported
        graph computes them: the face box-filtered to the training size, the fields upsampled."""
        net = net or self.net
        k = self.size // self.train_size
        st = self.strength(lam)
        mask, flow = net.heads.mask_flow(net.features(F.avg_pool2d(face, k), st), st, (self.size, self.size))
        return mask.clamp(0.0, 1.0), flow * float(k)

    def forward(self, face: torch.Tensor, lam: torch.Tensor,
                fill: nn.Module | None = None) -> tuple[torch.Tensor, ...]:
        """The edited crop, the smile network's mask and flow; ``fill`` (a copy of the mouth
        network, kept unchanged) also returns the crop it would give, for the fill's anchor."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.net_learns()):
            mask, flow = self.mask_flow(face, lam)
        amount = (lam * self.gain).clamp(0.0, self.shade_max)[:, :, None, None]
        shade = self.shade_field() * amount * (1.0 - mask)
        rgb, region = self.fill(face, mask, flow)
        if self.transport is not None:
            shade = self.transport(face, lam, rgb, region, flow, shade)
        if self.crease is not None:
            shade = self.crease(face, lam, rgb, region, flow, shade)
        out = composite(face, rgb, region, flow, shade)
        if fill is None:
            return out, mask, flow
        with torch.no_grad():
            rgb0, region0 = fill(face, mask, flow)
        return out, mask, flow, rgb, rgb0, region0

    def add_crease(self, width: int) -> None:
        """Give the model a new crease network (adding nothing until it learns) if it has none."""
        from .crease import CreaseNet

        if self.crease is None:
            self.crease = CreaseNet(width).to(self.field.device)

    def net_learns(self) -> bool:
        """Whether any of the smile network's weights learn (else its mask and flow need no gradient)."""
        return any(p.requires_grad for p in self.net.parameters())

    def export(self, out: Path, version: str, description: str, base: Path | None = None) -> None:
        """Write ``base`` (default: the source file) with this network's weights and shade field to
        ``out``. A ``base`` is the same smile network and shade without a mouth network (the file
        the source was made from by ``mouth-attach``, e.g. 1.3.0 for 1.4.0), so that the result can
        take a mouth network again."""
        import onnx
        from onnx import numpy_helper

        from smilecore import contract

        from . import shade
        from .export import save_with_meta
        from .mouth_attach import PREFIX
        from .onnx_weights import put_net

        src = base or self.source
        model = onnx.load(str(src))
        put_net(self.net, self.wmap, model, src)
        mouth = {PREFIX + "net." + k: v.detach().numpy() for k, v in self.fill.net.state_dict().items()}
        for init in model.graph.initializer:
            if init.name == shade.FIELD:
                init.CopyFrom(numpy_helper.from_array(self.shade_field().detach().numpy().astype(np.float32), shade.FIELD))
            elif init.name in mouth:  # the mouth network's weights keep their names and types
                old = numpy_helper.to_array(init)
                init.CopyFrom(numpy_helper.from_array(mouth[init.name].astype(old.dtype).reshape(old.shape), init.name))
        if self.crease is not None:
            from .crease import put_crease

            put_crease(model, self.crease)
        save_with_meta(model, out, {contract.META_MODEL_VERSION: version, "smile.tune": description})


class LowerFaceCritic(nn.Module):
    """The discriminator: four strided 4×4 convolutions over the grey lower face, averaged over the
    whole window into one logit per face. (A patch discriminator, one logit per window, learned
    nothing in 400 steps here: most windows, cheeks and chin, look alike in both classes; this one
    told unedited neutral faces from real smiles with AUC 0.9 after 300 steps of 12.)"""

    def __init__(self, width: int = 32):
        super().__init__()
        layers: list[nn.Module] = []
        c = 1
        for k in range(4):
            layers += [nn.Conv2d(c, width * 2 ** k, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
            c = width * 2 ** k
        self.features = nn.Sequential(*layers)
        self.logit = nn.Linear(c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logit(self.features(x).mean(dim=(2, 3)))


def pair_auc(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Share of (real, fake) pairs the critic orders right: its AUC on the batch."""
    r, f = real.detach().view(-1), fake.detach().view(-1)
    return (r[:, None] > f[None, :]).float().mean()


def anchor_weight(ref_mask: torch.Tensor, hold: float, margin: int) -> torch.Tensor | float:
    """How much the anchor weighs each pixel [N,1,S,S]: 1, and 1 + ``hold`` inside the model's own
    opening (``ref_mask`` above 0.05, grown by ``margin`` pixels); 1.0 when ``hold`` is 0."""
    if not hold:
        return 1.0
    opening = (ref_mask > 0.05).float()
    if margin > 0:
        opening = F.max_pool2d(opening, 2 * margin + 1, stride=1, padding=margin)
    return 1.0 + hold * opening


def lower_face(x: torch.Tensor, window: tuple[float, float, float, float] | None = None,
               size: tuple[int, int] = DISC_PATCH) -> torch.Tensor:
    """The grey window (x0, y0, x1, y1 as fractions of the crop; default the realism test's
    :data:`training.realism.WINDOW`, the lower face) of crops [N,3,S,S] in [-1, 1] at ``size``."""
    from .realism import WINDOW

    s = x.shape[-1]
    x0, y0, x1, y1 = (int(round(f * s)) for f in (window or WINDOW))
    r = x[:, :, y0:y1, x0:x1]
    if r.shape[-2:] != tuple(size):
        r = F.interpolate(r, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
    return 0.299 * r[:, 0:1] + 0.587 * r[:, 1:2] + 0.114 * r[:, 2:3]


def fine_band(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``x`` [N,1,H,W] less its Gaussian blur of ``sigma`` pixels, times 4 (the fine band alone: edges,
    creases, texture); ``x`` itself when ``sigma`` is 0. Edges are replicated for the blur."""
    if sigma <= 0:
        return x
    from .losses import gaussian_blur

    return 4.0 * (x - gaussian_blur(x, sigma))


class Sampler:
    """Batches of neutral faces of the train split with real smiles of the same strata."""

    def __init__(self, crops: np.ndarray, index: dict[str, np.ndarray], labels, seed: int):
        from .dataset import neutral_rows, smiling_rows
        from .landmarks68 import is_frontal
        from .realism import stratum_keys

        self.crops = crops
        self.edit = neutral_rows(index, labels, "train")
        real = smiling_rows(index, labels, "train")
        keep = is_frontal(index["lm68"][real], 0.15)
        if "age" in index:
            keep &= ~((index["source"][real] == "utkface") & (index["age"][real] < 13))
        real = real[keep]
        k1 = stratum_keys(index, self.edit, demographics=False)
        k0 = stratum_keys(index, real, demographics=False)
        self.by_key = {k: real[k0 == k] for k in np.unique(k0)}
        ok = np.array([k in self.by_key for k in k1])
        self.edit, self.keys = self.edit[ok], k1[ok]
        self.rng = np.random.default_rng(seed)

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` neutral faces and as many real smiles of their strata, as the network's input."""
        from .nets import network_input

        return tuple(network_input(x).contiguous() for x in self.raw(n))

    def raw(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """What :meth:`batch` gives, still as uint8 crops [N,S,S,3] (a quarter of the bytes to move)."""
        i = self.rng.choice(len(self.edit), n, replace=False)
        rows = self.edit[i]
        reals = np.array([self.rng.choice(self.by_key[k]) for k in self.keys[i]])
        flip = self.rng.random(n) < 0.5

        def load(rs: np.ndarray) -> np.ndarray:
            out = np.stack([np.asarray(self.crops[r]) for r in rs])
            out[flip] = out[flip, :, ::-1]
            return out

        return load(rows), load(reals)


def prefetched(draw, depth: int = 6):
    """The tuples of tensors ``draw()`` returns, drawn and pinned by a thread ahead of a GPU that
    would otherwise wait for them (one thread: the same batches, in the same order, as without
    it). Closing the generator stops the thread."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            item = tuple(t.pin_memory() for t in draw())
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    break
                except queue.Full:
                    pass

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while True:
            yield q.get()
    finally:
        stop.set()
        thread.join()


def device_input(crops: torch.Tensor) -> torch.Tensor:
    """uint8 crops [N,S,S,3] (on any device) as the network's input, exactly as :meth:`Sampler.batch`
    makes it on the CPU: float [N,3,S,S] in [-1, 1], contiguous."""
    return (crops.permute(0, 3, 1, 2).float() / 127.5 - 1.0).contiguous()


def sample_lams(n: int, tc: TuneConfig, rng: np.random.Generator) -> torch.Tensor:
    """λ per face: ``lam`` (judged) or, with probability ``neg_share``, ``lam_neg`` (anchor only)."""
    neg = rng.random(n) < tc.neg_share
    neg[0] = False  # every batch has a face to judge
    lam = np.where(neg, rng.uniform(*tc.lam_neg, n), rng.uniform(*tc.lam, n))
    return torch.from_numpy(lam.astype(np.float32))[:, None]


def main(argv: list[str] | None = None) -> int:
    """``python -m training tune [--model X.onnx] [--name N] [--minutes M] [--resume] [--export OUT --version V]``."""
    ap = argparse.ArgumentParser(prog="python -m training tune", description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=None)
    ap.add_argument("--model", default=None, help="the model to tune (default: the engine's default model; with --resume or --export: "
                    "a copy of the file the run was tuned from, when that has moved)")
    ap.add_argument("--mouth", default=None, help="mouth network weights to use instead of the model's own (mouth.pt)")
    ap.add_argument("--name", default="tune-v1", help="the run's folder under cache/tune/")
    ap.add_argument("--minutes", type=float, default=None, help="stop after this long (default [tune] minutes)")
    ap.add_argument("--steps", type=int, default=None, help="stop at this step (as well as after --minutes)")
    ap.add_argument("--resume", action="store_true", help="continue the run's last.pt")
    ap.add_argument("--device", default="cpu", help="where the run trains: cpu (default) or cuda (a lent GPU; the data "
                    "can travel there as a pack: python -m training pack)")
    ap.add_argument("--export", default=None, help="write the run's tuned model to this .onnx and stop")
    ap.add_argument("--version", default=None, help="the exported model's version")
    ap.add_argument("--step", type=int, default=None, help="export the run's snapshot of this step (step-NNNNNN.pt)")
    ap.add_argument("--average", type=int, default=None, metavar="FROM",
                    help="export the mean weights of the run's snapshots from step FROM to --step (default: its last)")
    ap.add_argument("--with-runs", nargs="+", default=[], metavar="RUN",
                    help="with --average: runs of the same recipe and source model (other seeds) whose snapshots of the same steps join the mean")
    ap.add_argument("--metrics", nargs="*", default=[], help="metrics.json files of `evaluate --model OUT` for its card")
    ap.add_argument("--failures", default=None, help="a Markdown file: what the model gets wrong, looked at (for its card)")
    ap.add_argument("--register", action="store_true", help="bundle the export as the default model (smilecore/models)")
    ap.add_argument("--hold-above", type=float, default=None, metavar="S",
                    help="with --export of a run of parts \"above\": hold its units at what they add at the network's strength S "
                         "(one of training.film_above.THRESHOLDS) for every strength above it (model 1.14.1: 2)")
    ap.add_argument("--base", default=None, help="export into this file instead (the same network and shade without a "
                    "mouth network, e.g. benchmarks/baseline/smile-mobileunet-1.3.0.onnx), for `mouth-attach`")
    args = ap.parse_args(argv)
    from smilecore.registry import resolve_model

    from .classifier import load_classifier
    from .dataset import load_labels
    from .prepare import load_prepared

    cfg = load_config(args.config)
    tc = cfg.tune
    log = get_logger("tune", cfg)
    torch.set_num_threads(tc.threads)
    torch.manual_seed(tc.seed)
    run = cfg.cache / "tune" / args.name
    run.mkdir(parents=True, exist_ok=True)
    ck_path = run / "last.pt"
    model_path = Path(args.model) if args.model else Path(resolve_model(None))
    mouth = Path(args.mouth) if args.mouth else None
    if args.step is not None:
        ck_path = run / f"step-{args.step:06d}.pt"
    ck = torch.load(ck_path, map_location="cpu", weights_only=False) if (args.resume or args.export) and ck_path.exists() else None
    averaged = ""
    if args.with_runs and args.average is None:
        raise SystemExit("error: --with-runs is for --average")
    if args.average is not None:
        if not args.export:
            raise SystemExit("error: --average is for --export")
        ck, averaged = average_snapshots(run, args.average, args.step, tuple(run.parent / r for r in args.with_runs))
    if ck is not None:
        model_path, model_sha = run_source(ck, Path(args.model) if args.model else None)
    elif not model_path.is_file():
        raise SystemExit(f"error: no model at {model_path}")
    else:
        model_sha = file_sha256(model_path)  # kept in the run, so that it resumes and exports from the same file
    model = MergedModel(model_path, mouth, tc.shade_grid)
    ref = copy.deepcopy(model.net).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    unknown = set(tc.parts) - {"net", "above", "band", "shade", "mouth", "crease"}
    if unknown or not tc.parts:
        raise SystemExit(f"error: [tune] parts must name some of net, above, band, shade, mouth, crease (got {list(tc.parts)})")
    if len({"net", "above", "band"} & set(tc.parts)) > 1:
        raise SystemExit("error: [tune] parts: \"above\" and \"band\" are parts of the smile network; name one of them or \"net\"")
    units: list[nn.Parameter] = []  # the FiLM units that learn, with parts "above" or "band"
    unit_part = "band" if "band" in tc.parts else "above"
    tie = None  # the band's units: their weights tied again after every step
    if "above" in tc.parts or (ck is not None and "above" in ck.get("parts", ())):
        from .film_above import learn_above, widen

        first = widen(model.net)
        if "above" in tc.parts:
            units = learn_above(model.net, first)
    if "band" in tc.parts or (ck is not None and "band" in ck.get("parts", ())):
        from .film_above import learn_band, tie_band, widen_band

        band_first = widen_band(model.net)
        if "band" in tc.parts:
            units = learn_band(model.net, band_first)
            tie = functools.partial(tie_band, model.net, band_first)
    if "crease" in tc.parts or (ck is not None and "crease" in ck):
        model.add_crease(tc.crease_width)
    crease_params = list(model.crease.parameters()) if model.crease is not None else []
    disc = LowerFaceCritic(tc.disc_width)
    groups = []
    for part, ps, lr in (("net", list(model.net.parameters()) if not units else [], tc.lr * tc.net_lr_scale),
                         (unit_part, units, tc.lr * tc.net_lr_scale), ("shade", [model.shade_delta], tc.lr),
                         ("mouth", list(model.fill.parameters()), tc.lr * tc.mouth_lr_scale),
                         ("crease", crease_params, tc.lr * tc.crease_lr_scale)):
        for p in ps:
            p.requires_grad_(part in tc.parts)
        if part in tc.parts:
            groups.append({"params": ps, "lr": lr})
    params = [p for g in groups for p in g["params"]]
    opt_g = torch.optim.Adam(groups, betas=(0.5, 0.999))
    ref_fill = copy.deepcopy(model.fill).eval() if "mouth" in tc.parts else None
    if ref_fill is not None:
        for p in ref_fill.parameters():
            p.requires_grad_(False)
    opt_d = torch.optim.Adam(disc.parameters(), lr=tc.lr_d, betas=(0.5, 0.999))
    step = 0
    if ck is not None:
        model.net.load_state_dict(ck["net"])
        model.shade_delta.data.copy_(ck["shade_delta"])
        if "mouth" in ck:
            model.fill.net.load_state_dict(ck["mouth"])
        if "crease" in ck:
            model.crease.load_state_dict(ck["crease"])
        step = int(ck["step"])
        if "disc" in ck:  # a snapshot holds the weights only
            disc.load_state_dict(ck["disc"])
            opt_g.load_state_dict(ck["opt_g"])
            opt_d.load_state_dict(ck["opt_d"])
        elif not args.export:
            raise SystemExit(f"error: {ck_path} is a snapshot: it can be exported, not resumed")
    elif args.export:
        raise SystemExit(f"error: no run at {ck_path}")
    if args.hold_above is not None and not (args.export and ck is not None and "above" in ck.get("parts", ())):
        raise SystemExit("error: --hold-above is for --export of a run of [tune] parts = [\"above\"]")
    if args.export:
        if not args.version:
            raise SystemExit("error: --export needs --version")
        held = ""
        if args.hold_above is not None:
            from .film_above import THRESHOLDS, hold_above

            if args.hold_above not in THRESHOLDS:
                raise SystemExit(f"error: --hold-above takes one of {', '.join(f'{t:g}' for t in THRESHOLDS)} (got {args.hold_above:g})")
            hold_above(model.net, first, args.hold_above)
            held = f", those units held from strength {args.hold_above:g} on"
        if args.register and args.base:
            raise SystemExit("error: --register takes a complete model, not one exported into --base")
        parts = {"net": "smile network", "above": "smile network's FiLM units above λ = 1 (training.film_above)",
                 "band": "smile network's FiLM units of the band λ = 0.5–1.5 (training.film_above)",
                 "shade": "shade field", "mouth": "mouth network", "crease": "crease network"}
        what = " and ".join(parts[p] for p in parts if p in ck.get("parts", ("net", "shade")))
        identity = (f", dlib's identity distance in the loss (weight {tc.w_identity:g}"
                    + (f", from λ = {tc.identity_from:g}" if tc.identity_from > 0 else "") + ")") if tc.w_identity > 0 else ""
        stat = ""
        if tc.w_stat > 0:
            how = {"mmd": "maximum mean discrepancy", "linear": "logistic critic's log-odds"}.get(tc.stat_kind, "mean difference")
            what_stats = f"HOG and LBP ({tc.stat_lbp:g} of the distance)" if tc.stat_lbp > 0 else "HOG"
            stat = (f", by the {how} of the lower face's {what_stats} statistics (training.hog_stats, weight {tc.w_stat:g}"
                    + (f", from λ = {tc.stat_from:g}" if tc.stat_from > 0 else "")
                    + (f", below λ = {tc.stat_to:g}" if tc.stat_to != float("inf") else "") + ")")
        floor = (f", the smile classifier's logit held at {tc.smile_floor:g} or above from λ = {tc.floor_from:g} "
                 f"(weight {tc.w_floor:g})") if tc.w_floor > 0 else ""
        if tc.w_reach > 0:
            floor += (f", the edits from λ = {tc.reach_low:g} to {tc.reach_high:g} asked to read as {tc.reach_share:g} × λ of a "
                      f"smile or more by the engine's face mesh (weight {tc.w_reach:g})")
        desc = (f"{what} tuned for {step} steps{averaged} against the train split's real smiles{stat}{floor}{identity}{held} "
                f"(python -m training tune, run {args.name}) from {model_path.name}")
        out = Path(args.export)
        base = Path(args.base) if args.base else None
        from .export import register_bundled, source_card

        source_card(base or model_path)  # before anything is written: the card needs the source's

        model.export(out, args.version, desc, base)
        digest, nbytes = file_sha256(out), out.stat().st_size
        card = out.with_suffix(".md")
        card.write_text(tune_card(base or model_path, out, args.version, desc, _log_at(run / "log.jsonl", step), digest, nbytes,
                                  [json.loads(Path(m).read_text()) for m in args.metrics],
                                  Path(args.failures).read_text() if args.failures else ""))
        if args.register:
            register_bundled(out, card, model.name, args.version, digest, nbytes)
        print(json.dumps({"onnx": str(out), "card": str(card), "step": step, "from": str(model_path), "sha256": digest, "bytes": nbytes}))
        return 0

    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model.to(device)
    ref.to(device)
    disc.to(device)
    if ref_fill is not None:
        ref_fill.to(device)
    for state in list(opt_g.state.values()) + list(opt_d.state.values()):  # a resumed run's moments ("step" stays a CPU count)
        for k, v in state.items():
            if torch.is_tensor(v) and k != "step":
                state[k] = v.to(device)
    crops, index = load_prepared(cfg)
    sampler = Sampler(crops, index, load_labels(cfg.cache), tc.seed + step)
    classifier = None
    if (cfg.cache / "classifier.pt").exists():
        classifier = load_classifier(cfg.cache / "classifier.pt").to(device).eval()
        for p in classifier.parameters():
            p.requires_grad_(False)
    else:
        log.info("no smile classifier in the cache (python -m training classifier): no rank term")
    descriptor = None
    if tc.w_identity > 0:  # dlib's face descriptor, frozen: gradients reach the edit only
        descriptor = FaceDescriptor(crop_size=model.size).to(device)
    stats = None
    hidden = tuple(tc.stat_hide) if tc.stat_hide else None  # a box of the crop the term does not see
    if tc.w_stat > 0:  # real smiles' HOG statistics (training.hog_stats), the edits' pulled towards them
        from .hog_stats import StatMatch, feature_weights, real_features

        pool = np.concatenate(list(sampler.by_key.values()))
        chosen = np.random.default_rng(tc.seed).choice(pool, min(tc.stat_reals, len(pool)), replace=False)
        stats = StatMatch(real_features(crops, chosen, tc.stat_fine, mirrored=True, lbp=tc.stat_lbp > 0, hide=hidden), tc.stat_decay,
                          kind=tc.stat_kind, weights=feature_weights(tc.stat_fine, tc.stat_lbp),
                          linear_l2=tc.stat_critic_l2, buffer=tc.stat_critic_buffer).to(device)
        if ck is not None and "stat_running" in ck:
            stats.load(ck["stat_running"])
    log.info("tuning %s: %d neutral faces, %d strata of real smiles, from step %d", model_path.name, len(sampler.edit),
             len(sampler.by_key), step)
    model.net.eval()  # batch norms keep the file's statistics (folded); their scale and shift still learn
    rng = np.random.default_rng([tc.seed, step])
    minutes = args.minutes if args.minutes is not None else tc.minutes
    start = last_ck = time.monotonic()
    sums: dict[str, torch.Tensor] = {}  # summed on the device, read every 20 steps (a read waits for the device)
    logf = open(run / "log.jsonl", "a")

    def view(x: torch.Tensor) -> torch.Tensor:
        return fine_band(lower_face(x, tuple(tc.disc_window), tuple(tc.disc_size)), tc.disc_fine)

    def weights() -> dict:
        crease = {"crease": _cpu(model.crease.state_dict())} if model.crease is not None else {}
        return {"model": str(model_path), "model_sha256": model_sha, "net": _cpu(model.net.state_dict()),
                "shade_delta": model.shade_delta.detach().cpu(), "mouth": _cpu(model.fill.net.state_dict()), **crease,
                "parts": tuple(tc.parts), "step": step}

    def save() -> None:
        tmp = ck_path.with_suffix(".tmp")
        kept = {"stat_running": stats.state()} if stats is not None else {}
        torch.save({**weights(), "disc": disc.state_dict(), "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), **kept}, tmp)
        tmp.replace(ck_path)

    if device.type == "cuda":  # uint8 crops go over, the GPU makes the input
        feed = prefetched(lambda: tuple(torch.from_numpy(a) for a in sampler.raw(tc.batch)))
        batches = (tuple(device_input(t.to(device, non_blocking=True)) for t in b) for b in feed)
    else:
        feed = batches = (sampler.batch(tc.batch) for _ in iter(int, 1))
    while time.monotonic() - start < minutes * 60 and (args.steps is None or step < args.steps):
        face, real = next(batches)
        lam = sample_lams(tc.batch, tc, rng).to(device)
        judged = (lam[:, 0] > 0).float()
        warm = step < tc.d_warmup  # the discriminator learns alone first
        with torch.set_grad_enabled(not warm):
            if ref_fill is None:
                out, mask, flow = model(face, lam)
            else:
                out, mask, flow, rgb, rgb0, region0 = model(face, lam, ref_fill)
        if model.net_learns():
            with torch.no_grad():
                ref_mask, ref_flow = model.mask_flow(face, lam, ref)
        # discriminator: real smiles against the edited faces that are judged
        j = judged.bool()
        terms = {}
        if tc.w_adv > 0:  # (without an adversary, no discriminator learns)
            d_real = disc(view(real))
            d_fake = disc(view(out[j].detach()))
            d_loss = hinge_d_loss(d_real, d_fake)
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            terms = {"d": d_loss.detach(), "d_auc": pair_auc(d_real, d_fake)}
        if not warm:
            if tc.w_adv > 0:
                for p in disc.parameters():
                    p.requires_grad_(False)
                terms["adv"] = hinge_g_loss(disc(view(out[j])))
                for p in disc.parameters():
                    p.requires_grad_(True)
            kept = j & (lam[:, 0] >= tc.stat_from) & (lam[:, 0] < tc.stat_to)
            if stats is not None and kept.any():
                from .hog_stats import stat_features

                terms["stat"] = stats.loss(stat_features(out[kept], tc.stat_fine, tc.stat_lbp > 0, hidden), lam[kept, 0])
            if model.net_learns():
                held = anchor_weight(ref_mask, tc.hold_opening, tc.hold_margin)
                if tc.anchor_below != 1.0:  # the faces the stats term leaves out, held harder
                    held = held * (1.0 + (tc.anchor_below - 1.0) * (lam < tc.stat_from).float()[:, :, None, None])
                terms["anchor"] = ((flow - ref_flow).abs() * held).mean() / 8.0 + tc.w_mask * ((mask - ref_mask).abs() * held).mean()
            if ref_fill is not None:  # the fill stays near the mouth network's own where it repaints, its colour more so
                d = rgb - rgb0
                luma = 0.299 * d[:, 0:1] + 0.587 * d[:, 1:2] + 0.114 * d[:, 2:3]
                area = region0.sum().clamp(min=1.0)
                terms["fill"] = (region0 * luma.abs()).sum() / area
                terms["fill_chroma"] = (region0 * (d - luma).abs()).sum() / (3.0 * area)
            if classifier is not None and (tc.w_rank or tc.w_floor):
                logit = classifier(out)
                if tc.w_rank:
                    terms["rank"] = smile_ranking(logit, classifier(face), lam)
                if tc.w_floor and (j & (lam[:, 0] >= tc.floor_from)).any():
                    terms["floor"] = smile_floor(logit, lam, tc.smile_floor, tc.floor_from)
            reached = j & (lam[:, 0] >= tc.reach_low) & (lam[:, 0] <= tc.reach_high)
            if tc.w_reach and model.net_learns() and reached.any():
                terms["reach"] = smile_reach(mesh_points(face), flow, lam, tc.reach_share, tc.reach_low, tc.reach_high)
            if "shade" in tc.parts:
                terms["shade"] = model.shade_delta.square().mean()
            if "crease" in tc.parts:
                terms["crease"] = model.crease.residual.square().mean()
            far = j & (lam[:, 0] >= tc.identity_from)
            if descriptor is not None and far.any():
                with torch.no_grad():
                    own = descriptor(face[far])
                terms["identity"] = identity_distance(descriptor(out[far]), own).mean()
            loss = sum(getattr(tc, "w_" + k) * terms[k] for k in LOSS_TERMS if k in terms)
            opt_g.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt_g.step()
            if tie is not None:
                tie()
        step += 1
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + v.detach()
        if step % 20 == 0:
            row = {"step": step, "min": round((time.monotonic() - start) / 60, 2), **{k: round(float(v) / 20, 5) for k, v in sums.items()}}
            logf.write(json.dumps(row) + "\n")
            logf.flush()
            log.info("%s", row)
            sums = {}
        if tc.snapshot_every and step % tc.snapshot_every == 0:  # kept, to choose on validation afterwards
            torch.save(weights(), run / f"step-{step:06d}.pt")
        if time.monotonic() - last_ck > tc.checkpoint_minutes * 60:
            save()
            last_ck = time.monotonic()
    feed.close()
    save()
    log.info("stopped at step %d; checkpoint %s", step, ck_path)
    return 0


def _cpu(state: dict) -> dict:
    """A state dict with its tensors on the CPU (snapshots load anywhere)."""
    return {k: v.detach().cpu() if torch.is_tensor(v) else v for k, v in state.items()}


def run_source(ck: dict, given: Path | None) -> tuple[Path, str]:
    """The model a run (checkpoint or snapshot ``ck``) was tuned from, and its sha256: ``given``
    (``--model``) when named, else the path the run recorded. Raises ``SystemExit`` with a one-line error when that
    file is gone, or when its checksum is not the one the run recorded (runs from before the
    checksum was kept are taken on trust)."""
    path = given or Path(ck["model"])
    if not path.is_file():
        raise SystemExit(f"error: the run was tuned from {path}, which is gone (a model no longer bundled?): "
                         "pass --model with a copy of that file")
    want, got = ck.get("model_sha256"), file_sha256(path)
    if want and got != want:
        raise SystemExit(f"error: {path} is not the model the run was tuned from (sha256 {want[:12]}…)")
    return path, got


def mesh_points(face: torch.Tensor) -> torch.Tensor:
    """The engine's face mesh landmarks [N,468,2] (crop pixels) of network inputs ``face`` [N,3,S,S] in
    [-1, 1], on the inputs' device (no gradient: the input does not learn)."""
    from smilecore import facemesh

    crops = ((face.detach().float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return torch.from_numpy(facemesh.network().landmarks(crops).astype(np.float32)).to(face.device)


def average_snapshots(run: Path, first: int, last: int | None = None, others: tuple[Path, ...] = ()) -> tuple[dict, str]:
    """The mean weights of ``run``'s snapshots (``step-NNNNNN.pt``) from step ``first`` to ``last``
    (default: its last snapshot), as one snapshot of the last step, and a phrase saying so. A
    discriminator moves what it rewards from step to step; the mean of many steps keeps what they share.

    ``others``: runs of the same recipe from the same model with other seeds, whose snapshots of
    the same steps join the mean (each run's luck averaged away). Every run must hold every step
    ``run`` has in the range and record the same source model (checksum), else ``SystemExit``."""
    steps = sorted(int(p.stem.split("-")[1]) for p in run.glob("step-*.pt"))
    steps = [k for k in steps if k >= first and (last is None or k <= last)]
    if len(steps) < 2:
        raise SystemExit(f"error: --average needs two snapshots or more in {run} from step {first}"
                         + (f" to {last}" if last is not None else "") + f" (found {len(steps)})")
    cks = [torch.load(run / f"step-{k:06d}.pt", map_location="cpu", weights_only=False) for k in steps]
    for other in others:
        missing = [k for k in steps if not (other / f"step-{k:06d}.pt").is_file()]
        if missing:
            raise SystemExit(f"error: run {other.name} has no snapshot of step {missing[0]} to average with {run.name}")
        more = [torch.load(other / f"step-{k:06d}.pt", map_location="cpu", weights_only=False) for k in steps]
        if more[0].get("model_sha256") != cks[0].get("model_sha256"):
            raise SystemExit(f"error: run {other.name} was tuned from another model than run {run.name}")
        cks += more
    mean = dict(cks[-1])
    for key in ("net", "mouth", "crease"):
        if key in mean:
            mean[key] = {k: (sum(c[key][k].double() for c in cks) / len(cks)).to(v.dtype) if v.is_floating_point() else v
                         for k, v in cks[-1][key].items()}
    mean["shade_delta"] = sum(c["shade_delta"] for c in cks) / len(cks)
    runs = f" of runs {', '.join([run.name] + [o.name for o in others])}" if others else ""
    return mean, f" (the mean of {len(cks)} snapshots, steps {steps[0]}–{steps[-1]}{runs})"


def _log_at(path: Path, step: int) -> dict:
    """The run's last logged losses at or before ``step`` (for the card)."""
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    rows = [r for r in rows if r.get("step", 0) <= step]
    return rows[-1] if rows else {}


def tune_card(src: Path, out: Path, version: str, description: str, last: dict, digest: str, nbytes: int,
              metrics: list[dict], failures: str = "") -> str:
    """The tuned model's card: what the tuning did, its ``failures`` (Markdown), its evaluation
    (``metrics``), then the source model's card."""
    from .graph_parts import derived_card

    intro = [f"Model {version}: {description}. The graph is `{src.name}`'s; only tuned weights changed.",
             "Trained on research / non-commercial face data: the weights are research / non-commercial too.", "",
             f"- last logged losses: `{json.dumps(last)}`"]
    return derived_card(src, out, version, intro, digest, nbytes, metrics, failures)
