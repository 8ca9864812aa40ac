"""``python -m training transport``: a per-face shade that carries each edit towards real smiles.

The mean shade of real smiles (``python -m training shade``) lights every face the same way, and
a warp cannot fold a cheek; the realism test still tells the edits from real smiles mostly by how
the skin around the mouth is lit (docs/realism.md). This step learns, from the train split, how
the *edited* faces' low-resolution log-luminance differs from real smiles' (both sides of the
realism test's matched sample, other people on each side) and adds to an exported contract-2
model a shade that moves each edited face to where optimal transport would move it:

* **features**: the composited crop over the lower face (:data:`REGION`) averaged over 3 × 3 pixels
  to a 48 × 64 grid, as log-luminance ``log(luma + 8)`` (the engine's shade offset, in 0…255), less
  its mean (no exposure change);
* **maps**: in each of 35 overlapping 16 × 16 patches of that grid (stride 8), the edited faces and the
  real smiles are each fitted with a Gaussian in the patch's first :data:`COMPONENTS` principal
  components; the Monge map between two Gaussians, ``T(c) = m_real + A (c − m_edit)``, moves every
  edit the least distance that gives the moved edits the real smiles' mean *and* covariance
  (a mean shade matches only the mean). One map at λ = 1, one at λ = 2;
* **shade**: ``T(c) − c`` back in the grid, the patches blended with a Hann window, upsampled
  (bilinear) to the region, faded out over its last :data:`RAMP` pixels, limited to ±:data:`LIMIT`,
  and added to the model's shade outside the painted mouth. Below λ = 1 it grows from 0 (λ = 0:
  nothing, so λ = 0 stays bit-identical), between 1 and 2 it blends the two maps, above 2 it is the
  λ = 2 map;
* **shaping** (model 1.8.0 on): of that shade only what changes within about a cheek is kept (its
  part smoother than a Gaussian of σ = :data:`SMOOTHNESS` crop pixels is taken away, on the grid),
  and it fades in over the region's top :data:`TOP_FADE` rows (a raised cosine) instead of
  :data:`RAMP`. The broad part darkened or lit a whole lower face as a grey or bright patch with a
  straight edge under the eyes, and moved the realism test by nothing (docs/realism.md).
  ``--rebuild`` writes the maps of a model fitted before this shaping (1.5.0–1.7.0) in this graph.
* **refitting**: ``--refit`` takes a model's transport out (:func:`without_transport`) and fits a
  new one on that model's own edits (model 1.10.0: 1.9.0's networks had been tuned under maps fitted
  on 1.4.1's edits).

The graph computes the composite of the crop itself, cell by cell (the face warped along the flow,
the painted mouth, the mean shade), as the features were fitted, so the engine and the contract
are unchanged. It costs about a millisecond per face. It is a statistical shade, not a generator: it darkens
mouth corners and the folds beside them where real smiles have them, and it cannot draw what no
edit has.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from smilecore.contract import SHADE_OFFSET

#: The lower face the transport works on, in pixels of the 256² crop: x0, y0, x1, y1 (a multiple of :data:`POOL`).
REGION = (32, 104, 224, 248)
SIZE = 256
POOL = 3
GRID = ((REGION[3] - REGION[1]) // POOL, (REGION[2] - REGION[0]) // POOL)  # (48, 64)
PATCH = 16
STRIDE = 8
#: Principal components per patch (chosen on the validation split's realism test: docs/realism.md).
COMPONENTS = 40
#: Pixels over which the shade fades out at the region's border, and the largest |log gain|.
RAMP = 10
LIMIT = 0.5
#: σ (crop pixels) of the Gaussian whose smooth part of the shade is taken away, and the rows over
#: which the shade fades in from the region's top (chosen on the validation split: docs/realism.md).
SMOOTHNESS = 16.0
TOP_FADE = 32
#: Strengths the two maps were fitted at, and the share of each map's shade that is applied (at
#: λ = 1 the full map took identity past the issue's 0.25 on validation: docs/realism.md).
LAMS = (1.0, 2.0)
GAINS = (0.7, 1.0)
#: The luma weights (ITU-R 601) and the shade's offset in 0…255 (smilecore.contract.SHADE_OFFSET).
LUMA = (0.299, 0.587, 0.114)
OFFSET = SHADE_OFFSET * 255.0
#: How the shade is shaped, in a model's description.
SHAPING = (f"only its part that changes within about a cheek (less its smoothing by a Gaussian of σ = {SMOOTHNESS:g} crop pixels), "
           f"fading in over the region's top {TOP_FADE} rows")
#: Names inside the merged graph.
PREFIX = "transport/"
MEAN_SHADE = "shade_mean"


#: The grid in STRIDE × STRIDE blocks, and the patches (2 × 2 blocks each, overlapping by one).
BLOCKS = (GRID[0] // STRIDE, GRID[1] // STRIDE)  # (6, 8)
PATCHES = (BLOCKS[0] - 1, BLOCKS[1] - 1)  # (5, 7)


def to_patches(grid: torch.Tensor) -> torch.Tensor:
    """[N, GRID] -> the overlapping patches [N, P, PATCH²] (P = 5 × 7, row by row). Inside a patch the
    values are ordered by quarter (top-left, top-right, bottom-left, bottom-right), then row by row."""
    n = grid.shape[0]
    blocks = grid.reshape(n, BLOCKS[0], STRIDE, BLOCKS[1], STRIDE).permute(0, 1, 3, 2, 4)  # [N, by, bx, y, x]
    quarters = [blocks[:, dy : dy + PATCHES[0], dx : dx + PATCHES[1]] for dy in (0, 1) for dx in (0, 1)]
    return torch.stack(quarters, 3).reshape(n, PATCHES[0] * PATCHES[1], PATCH * PATCH)


def from_patches(patches: torch.Tensor) -> torch.Tensor:
    """The sum over patches [N, P, PATCH²] put back where :func:`to_patches` took them: [N, GRID]."""
    q = patches.reshape(-1, PATCHES[0], PATCHES[1], 4, STRIDE, STRIDE)
    total = None
    for i, (dy, dx) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        placed = F.pad(q[:, :, :, i].permute(0, 3, 4, 1, 2), (dx, 1 - dx, dy, 1 - dy))  # [N, y, x, by, bx]
        total = placed if total is None else total + placed
    return total.permute(0, 3, 1, 4, 2).reshape(-1, GRID[0], GRID[1])


def hann_window() -> np.ndarray:
    """The blending window of a patch, [PATCH²] in :func:`to_patches`' order (a Hann window without its zero ends)."""
    h = np.hanning(PATCH + 2)[1:-1]
    w = np.outer(h, h).reshape(2, STRIDE, 2, STRIDE).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(w.reshape(-1)).astype(np.float32)


def taper(top: int = TOP_FADE) -> np.ndarray:
    """[h, w] of the region: how much of the transport's shade each pixel gets, 0 at the region's
    border and 1 inside, rising over :data:`RAMP` pixels at the sides and bottom and over ``top`` rows
    at the top (a raised cosine; ``top`` = 0: a linear rise over RAMP there too, as models 1.5.0–1.7.0)."""
    x0, y0, x1, y1 = REGION
    h, w = y1 - y0, x1 - x0
    y = np.arange(h) + 0.5
    rise = 0.5 - 0.5 * np.cos(np.pi * np.clip(y / top, 0, 1)) if top else np.clip(y / RAMP, 0, 1)
    rows = np.minimum(rise, np.clip((h - y) / RAMP, 0, 1))
    tx = np.minimum(np.arange(w) + 0.5, w - np.arange(w) - 0.5)
    return np.outer(rows, np.clip(tx / RAMP, 0, 1)).astype(np.float32)


def smoothing(n: int, sigma: float) -> np.ndarray:
    """[n, n]: row i is a Gaussian of ``sigma`` cells around cell i, cut at the ends and renormalised,
    so ``m @ x`` is ``x`` smoothed along that axis (twice, on both axes: a normalised 2-D smoothing)."""
    i = np.arange(n)
    g = np.exp(-0.5 * ((i[:, None] - i[None, :]) / sigma) ** 2)
    return (g / g.sum(1, keepdims=True)).astype(np.float32)


def log_luminance(img: torch.Tensor) -> torch.Tensor:
    """[N,3,H,W] RGB in 0…255 -> [N,H,W] ``log(luma + OFFSET)``."""
    luma = img[:, 0] * LUMA[0] + img[:, 1] * LUMA[1] + img[:, 2] * LUMA[2]
    return torch.log(luma.clamp(min=0.0) + OFFSET)


def cell_features(cells: torch.Tensor) -> torch.Tensor:
    """The region's cells [N,3,*GRID] (RGB 0…255, each the mean of POOL × POOL pixels) -> its
    features [N, GRID]: their log-luminance, less each face's mean."""
    g = log_luminance(cells)
    return g - g.mean(dim=(1, 2), keepdim=True)


def region_features(region: torch.Tensor) -> torch.Tensor:
    """The region [N,3,h,w] of an unedited crop (RGB 0…255) -> its features [N, GRID]."""
    return cell_features(F.avg_pool2d(region, POOL))


def crop_features(crops: np.ndarray) -> np.ndarray:
    """Features [N, GRID...] of unedited uint8 crops [N,256,256,3] (the real smiles)."""
    x0, y0, x1, y1 = REGION
    t = torch.from_numpy(np.ascontiguousarray(crops[:, y0:y1, x0:x1])).permute(0, 3, 1, 2).float()
    return region_features(t).numpy()


class Transport(nn.Module):
    """(face, strength, rgb, mask, flow, mean shade) -> the shade with the transport added.

    ``shaped``: keep only the shade's part that changes within about a cheek and fade it in over
    :data:`TOP_FADE` rows (model 1.8.0 on); False: the whole shade, as models 1.5.0–1.7.0."""

    def __init__(self, basis: np.ndarray, maps: np.ndarray, offsets: np.ndarray, gains: tuple[float, float] = GAINS,
                 shaped: bool = True):
        super().__init__()
        self.shaped = shaped
        x0, y0, x1, y1 = REGION
        self.register_buffer("basis", torch.from_numpy(np.asarray(basis, np.float32)))  # [P,k,D]
        # one buffer per map, each used as it is, so that the exported file keeps their names
        # (transport_from_model reads them back)
        for i in (0, 1):
            self.register_buffer(f"maps{i + 1}", torch.from_numpy(np.asarray(maps[i], np.float32)))  # [P,k,k]
            self.register_buffer(f"offsets{i + 1}", torch.from_numpy(np.asarray(offsets[i], np.float32))[..., None])  # [P,k,1]
            self.register_buffer(f"gain{i + 1}", torch.tensor([float(gains[i])]))
        window = torch.from_numpy(hann_window())
        self.register_buffer("window", window.reshape(1, -1, 1))  # [1,D,1]: multiplies [P,D,N]
        wsum = from_patches(window.reshape(1, 1, -1).expand(1, PATCHES[0] * PATCHES[1], -1))[0]
        self.register_buffer("norm", 1.0 / wsum)
        self.register_buffer("taper", torch.from_numpy(taper(TOP_FADE if shaped else 0)))
        if shaped:  # the smoothing of each axis of the grid, the second stored as it is used (transposed)
            self.register_buffer("smooth_y", torch.from_numpy(smoothing(GRID[0], SMOOTHNESS / POOL)))
            self.register_buffer("smooth_xt", torch.from_numpy(np.ascontiguousarray(smoothing(GRID[1], SMOOTHNESS / POOL).T)))
        # the centre of each cell of the grid, in crop pixels
        half = (POOL - 1) / 2.0
        gy, gx = torch.meshgrid(torch.arange(GRID[0], dtype=torch.float32) * POOL + y0 + half,
                                torch.arange(GRID[1], dtype=torch.float32) * POOL + x0 + half, indexing="ij")
        self.register_buffer("base_x", gx)
        self.register_buffer("base_y", gy)

    def features(self, face: torch.Tensor, rgb: torch.Tensor, mask: torch.Tensor, flow: torch.Tensor,
                 shade: torch.Tensor) -> torch.Tensor:
        """Features of the composited crop, cell by cell: the face averaged over POOL × POOL pixels and
        sampled (bilinear, as training.losses.warp) where the flow at the cell's centre points, the
        cell's mean shade on it, the cell's mean painted mouth over it. For an unmoved, unpainted
        crop these are exactly :func:`region_features` (27,648 samples would cost 5 ms; 3,072 do not)."""
        x0, y0, x1, y1 = REGION
        c = POOL // 2
        blurred = F.avg_pool2d(face, POOL, stride=1, padding=c, count_include_pad=False)
        fl = flow[:, :, y0 + c : y1 : POOL, x0 + c : x1 : POOL]
        gx = (self.base_x + fl[:, 0]) * (2.0 / (SIZE - 1)) - 1.0
        gy = (self.base_y + fl[:, 1]) * (2.0 / (SIZE - 1)) - 1.0
        warped = F.grid_sample(blurred, torch.stack([gx, gy], -1), mode="bilinear", padding_mode="reflection", align_corners=True)
        warped = (warped + 1.0) * 127.5
        lit = (warped + OFFSET) * torch.exp(F.avg_pool2d(shade[:, :, y0:y1, x0:x1], POOL)) - OFFSET
        m = F.avg_pool2d(mask[:, :, y0:y1, x0:x1], POOL)
        return cell_features((1.0 - m) * lit + m * (F.avg_pool2d(rgb[:, :, y0:y1, x0:x1], POOL) + 1.0) * 127.5)

    def displacement(self, feats: torch.Tensor, strength: torch.Tensor) -> torch.Tensor:
        """The transport's shade on the grid [N,1,*GRID] for features [N,*GRID] at per-face strengths [N,1]."""
        # the weights are used as stored, never transposed (the data is), so that the exported file
        # holds one copy of each
        z = torch.matmul(self.basis, to_patches(feats).permute(1, 2, 0))  # [P,k,N]
        lam = strength.reshape(1, 1, -1)
        w2 = (lam - 1.0).clamp(0.0, 1.0)
        w1 = (lam.clamp(0.0, 1.0) - w2) * self.gain1
        w2 = w2 * self.gain2
        d = w1 * (torch.matmul(self.maps1, z) + self.offsets1) + w2 * (torch.matmul(self.maps2, z) + self.offsets2)
        back = torch.matmul(d.transpose(1, 2), self.basis).permute(0, 2, 1) * self.window  # [P,D,N]
        return (from_patches(back.permute(2, 0, 1)) * self.norm)[:, None]

    def forward(self, face, strength, rgb, mask, flow, shade):  # noqa: D102 (see the class)
        x0, y0, x1, y1 = REGION
        d = self.displacement(self.features(face, rgb, mask, flow, shade), strength)
        if self.shaped:  # only what changes within about a cheek
            d = d - torch.matmul(torch.matmul(self.smooth_y, d), self.smooth_xt)
        up = F.interpolate(d, size=(y1 - y0, x1 - x0), mode="bilinear", align_corners=False) * self.taper
        up = F.pad(up.clamp(-LIMIT, LIMIT), (x0, SIZE - x1, y0, SIZE - y1))
        return shade + up * (1.0 - mask)


def transport_from_model(model) -> Transport | None:
    """The :class:`Transport` inside a merged model (an ``onnx.ModelProto``), or None if it has none."""
    from onnx import numpy_helper

    v = {}
    for init in model.graph.initializer:
        if init.name.startswith(PREFIX):
            name = init.name[len(PREFIX) :]
            v[name[: -len("_fp16")] if name.endswith("_fp16") else name] = numpy_helper.to_array(init).astype(np.float32)
    # the exporter keeps one copy of equal buffers (gains 1.0 and 1.0: model 1.10.0) and makes the
    # other an Identity of it
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input[0].startswith(PREFIX) and node.output[0].startswith(PREFIX):
            src, dst = (n[len(PREFIX) :] for n in (node.input[0], node.output[0]))
            if src in v and dst not in v:
                v[dst] = v[src]
    if "basis" not in v:
        return None
    maps = np.stack([v["maps1"], v["maps2"]])
    offsets = np.stack([v["offsets1"][..., 0], v["offsets2"][..., 0]])
    module = Transport(v["basis"], maps, offsets, (float(v["gain1"][0]), float(v["gain2"][0])), shaped="smooth_y" in v).eval()
    for name in ("taper", "smooth_y", "smooth_xt"):  # as the file has them (float16), not as this code would make them
        if name in v:
            getattr(module, name).copy_(torch.from_numpy(v[name]))
    return module


def rebuild(src: Path, out: Path, version: str, crops: np.ndarray) -> tuple[Transport, str, float]:
    """Write ``src`` (a model with a transported shade fitted before the shaping) to ``out`` with the
    same maps in this code's graph (:class:`Transport`, shaped) and version ``version``; ``crops``
    (uint8 [N,256,256,3]) check the new file against PyTorch. Returns (module, description, largest
    shade difference)."""
    import onnx

    from smilecore import contract

    from .export import weights_to_fp16

    model = onnx.load(str(src))
    meta = {p.key: p.value for p in model.metadata_props}
    old = transport_from_model(model)
    if old is None or "smile.transport" not in meta:
        raise SystemExit(f"error: {src} has no transported shade to rebuild; leave out --rebuild to fit one")
    maps = np.stack([old.maps1.numpy(), old.maps2.numpy()])
    offsets = np.stack([old.offsets1.numpy()[..., 0], old.offsets2.numpy()[..., 0]])
    module = Transport(old.basis.numpy(), maps, offsets, (float(old.gain1), float(old.gain2))).eval()
    description = meta["smile.transport"].split("; rebuilt")[0] + f"; rebuilt from model {meta.get(contract.META_MODEL_VERSION, '?')}'s maps: {SHAPING}"
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        base, part, merged = without_transport(src, Path(tmp) / "base.onnx"), Path(tmp) / "transport.onnx", Path(tmp) / out.name
        export_transport(module, part)
        weights_to_fp16(part)
        attach(base, part, merged, version, description)
        worst = check_merged(base, merged, module, crops)  # nothing is written at OUT unless it passes
        merged.replace(out)
    return module, description, worst


# ------------------------------------------------------------------ fitting

def psd_sqrt(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Square root and pseudo-inverse square root of a symmetric positive semi-definite matrix."""
    w, v = np.linalg.eigh((m + m.T) / 2.0)
    w = np.clip(w, 0.0, None)
    inv = np.where(w > 1e-12 * max(w.max(), 1e-30), 1.0 / np.sqrt(np.maximum(w, 1e-300)), 0.0)
    return (v * np.sqrt(w)) @ v.T, (v * inv) @ v.T


def gaussian_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The matrix A of the optimal-transport (Monge) map between Gaussians with covariances ``a`` and ``b``."""
    h, hi = psd_sqrt(a)
    mid, _ = psd_sqrt(h @ b @ h)
    return hi @ mid @ hi


def fit(edited: dict[float, np.ndarray], real: np.ndarray, k: int = COMPONENTS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit the patch maps: ``edited`` {λ: features [N,*GRID]} of edited faces at :data:`LAMS`, ``real``
    features of real smiles. Returns (basis [P,k,D], maps A − I [2,P,k,k], offsets [2,P,k]) for :class:`Transport`."""
    pe = {lam: to_patches(torch.from_numpy(np.asarray(f, np.float32))).double().numpy() for lam, f in edited.items()}
    pr = to_patches(torch.from_numpy(np.asarray(real, np.float32))).double().numpy()
    n_p = pr.shape[1]
    basis = np.zeros((n_p, k, PATCH * PATCH))
    maps = np.zeros((len(LAMS), n_p, k, k))
    offsets = np.zeros((len(LAMS), n_p, k))
    for p in range(n_p):
        pooled = np.concatenate([pe[lam][:, p] for lam in LAMS] + [pr[:, p]])
        mu = pooled.mean(0)
        v = np.linalg.svd(pooled - mu, full_matrices=False)[2][:k]
        basis[p] = v
        cr = (pr[:, p] - mu) @ v.T
        for i, lam in enumerate(LAMS):
            ce = (pe[lam][:, p] - mu) @ v.T
            a = gaussian_map(np.cov(ce.T), np.cov(cr.T))
            me, mr = ce.mean(0), cr.mean(0)
            maps[i, p] = a - np.eye(k)
            offsets[i, p] = mr - a @ me - (a - np.eye(k)) @ (v @ mu)
    return basis, maps, offsets


def edited_features(model_path: Path, crops: np.ndarray, lam: float, batch: int = 16) -> np.ndarray:
    """Features of ``crops`` edited by the model at ``lam`` with the engine's per-face strength and
    own-teeth rules (as training.evaluate.onnx_editor), composited as :class:`Transport` sees them."""
    from smilecore import facemesh
    from smilecore.model import SmileModel
    from smilecore.network_io import to_network_input
    from smilecore.strength import face_strengths

    model = SmileModel(model_path)
    probe = Transport(np.zeros((1, 1, PATCH * PATCH)), np.zeros((2, 1, 1, 1)), np.zeros((2, 1, 1)))
    out = []
    for a in range(0, len(crops), batch):
        c = crops[a : a + batch]
        seen = facemesh.network().read(c)
        o = model.run(c, face_strengths(lam, seen.level))
        mask = facemesh.painted_mask(o.mask, seen.teeth)
        shade = o.shade if o.shade is not None else np.zeros_like(mask)
        with torch.no_grad():
            f = probe.features(torch.from_numpy(to_network_input(c)), torch.from_numpy(o.rgb), torch.from_numpy(mask),
                               torch.from_numpy(o.flow), torch.from_numpy(shade))
        out.append(f.numpy())
    return np.concatenate(out)


# ------------------------------------------------------------------ the merged model

def export_transport(module: Transport, out: Path) -> None:
    """Trace ``module`` to ONNX opset 17 (inputs face, strength, rgb, mask, flow, shade; output shade_out)."""
    from .graph_parts import export_shade_part

    export_shade_part(module, out, SIZE)


def attach(base_path: Path, part_path: Path, out: Path, version: str, description: str) -> None:
    """Write ``base_path`` (a contract-2 model) to ``out`` with the graph at ``part_path`` deciding its ``shade``."""
    import onnx

    from smilecore import contract

    from .export import save_with_meta
    from .graph_parts import append_part, rename_in_graph

    base, extra = onnx.load(str(base_path)), onnx.load(str(part_path))
    rename_in_graph(base, {contract.OUTPUT_SHADE: MEAN_SHADE})
    shared = {"face": contract.INPUT_FACE, "strength": contract.INPUT_STRENGTH, "rgb": contract.OUTPUT_RGB,
              "mask": contract.OUTPUT_MASK, "flow": contract.OUTPUT_FLOW, "shade": MEAN_SHADE, "shade_out": contract.OUTPUT_SHADE}
    append_part(base, extra, shared, PREFIX)
    onnx.checker.check_model(base)
    save_with_meta(base, out, {contract.META_MODEL_VERSION: version, "smile.transport": description})


def check_merged(base_path: Path, merged_path: Path, module: Transport, crops: np.ndarray, tolerance: float = 2e-3) -> float:
    """Largest |shade| difference between the merged file and the base file's outputs passed through
    ``module`` in PyTorch (λ = 0.5, 1.5, 3 on ``crops``); raises SystemExit above ``tolerance``."""
    from smilecore.model import SmileModel
    from smilecore.network_io import to_network_input

    base, merged = SmileModel(base_path), SmileModel(merged_path)
    lams = np.resize(np.array([0.5, 1.5, 3.0, 0.0], np.float32), len(crops))
    a, b = base.run(crops, lams), merged.run(crops, lams)
    with torch.no_grad():
        want = module(torch.from_numpy(to_network_input(crops)), torch.from_numpy(lams.reshape(-1, 1)), torch.from_numpy(a.rgb),
                      torch.from_numpy(a.mask), torch.from_numpy(a.flow), torch.from_numpy(a.shade)).numpy()
    worst = float(np.abs(b.shade - want).max())
    if worst > tolerance or not np.array_equal(b.shade[lams == 0], a.shade[lams == 0]):
        raise SystemExit(f"error: the merged model's shade differs from PyTorch's by {worst:.2e} (or changes λ = 0)")
    return worst


def transport_card(src: Path, out: Path, version: str, description: str, digest: str, nbytes: int, metrics: list[dict],
                   failures: str = "", rebuilt: bool = False, refitted: bool = False) -> str:
    """The new model's card: what the transport adds (``rebuilt``: how it was rewritten; ``refitted``:
    it replaces the source's own), its ``failures`` (Markdown), then the source model's card."""
    from .graph_parts import derived_card

    what = ("with its **per-face shade transported to real smiles rebuilt** in this code's graph, the same maps "
            "(`python -m training transport --rebuild`)" if rebuilt else
            "with its **per-face shade transported to real smiles refitted** on its own edits, its previous maps taken "
            "out (`python -m training transport --refit`)" if refitted else
            "with a **per-face shade transported to real smiles** inside its graph (`python -m training transport`)")
    intro = [f"Model {version} is `{src.name}` {what}: {description}.",
             "Fitted on research / non-commercial face data: the weights are research / non-commercial too."]
    return derived_card(src, out, version, intro, digest, nbytes, metrics, failures)


def main(argv: list[str] | None = None) -> int:
    """``python -m training transport --model IN.onnx --out OUT.onnx --version V [--components K | --rebuild] [--register]``."""
    ap = argparse.ArgumentParser(prog="python -m training transport", description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=None)
    ap.add_argument("--model", required=True, help="an exported smile model with a shade output (contract 2)")
    ap.add_argument("--out", required=True, help="the model to write (.onnx; a model card .md beside it)")
    ap.add_argument("--version", required=True, help="the new model's version")
    ap.add_argument("--components", type=int, default=COMPONENTS, help=f"principal components per patch (default {COMPONENTS})")
    ap.add_argument("--gains", type=float, nargs=2, default=GAINS, metavar=("G1", "G2"),
                    help=f"share of the λ = 1 and λ = 2 maps' shade applied (default {GAINS[0]:g} {GAINS[1]:g})")
    ap.add_argument("--faces", type=int, default=None, help="most faces per side of the train split's sample (default all)")
    ap.add_argument("--rebuild", action="store_true",
                    help="IN has a transported shade fitted before its shaping (models 1.5.0–1.7.0): keep its maps, "
                         "write them in this code's graph")
    ap.add_argument("--refit", action="store_true",
                    help="IN has a transported shade: take it out and fit a new one on IN's own edits (its maps were "
                         "fitted on an earlier model's: 1.5.0-1.9.0 carry 1.4.1's)")
    ap.add_argument("--metrics", nargs="*", default=[], help="metrics.json files of `evaluate --model OUT` for its card")
    ap.add_argument("--failures", default=None, help="a Markdown file: what the model gets wrong, looked at (for its card)")
    ap.add_argument("--register", action="store_true", help="bundle it as the default model (smilecore/models)")
    args = ap.parse_args(argv)
    import onnx

    from smilecore import contract

    from .config import load_config
    from .dataset import load_labels, resize_crop
    from .prepare import load_prepared
    from .realism import realism_sample

    cfg = load_config(args.config)
    src, out = Path(args.model), Path(args.out)
    if not out.parent.is_dir():
        raise SystemExit(f"error: the folder of --out, {out.parent}, does not exist")
    try:
        meta = {p.key: p.value for p in onnx.load(str(src)).metadata_props}
    except OSError as e:
        raise SystemExit(f"error: cannot read --model {src}: {e.strerror or e}") from None
    except Exception as e:  # protobuf's DecodeError: not an ONNX file
        raise SystemExit(f"error: --model {src} is not an ONNX model ({type(e).__name__})") from None
    from .export import source_card

    source_card(src)  # before anything is written: the new card embeds the source's
    if meta.get(contract.META_CONTRACT) != contract.CONTRACT_SHADE:
        raise SystemExit(f"error: {src} has no shade output (contract {meta.get(contract.META_CONTRACT)}); run `python -m training shade` first")
    if args.rebuild and args.refit:
        raise SystemExit("error: --rebuild keeps the maps, --refit fits new ones: give one")
    if "smile.transport" in meta and not (args.rebuild or args.refit):
        raise SystemExit(f"error: {src} already has a transported shade (--rebuild writes its maps in this code's graph, "
                         "--refit fits new ones)")
    if args.refit and "smile.transport" not in meta:
        raise SystemExit(f"error: {src} has no transported shade to refit; leave out --refit")
    if int(meta[contract.META_SIZE]) != SIZE:
        raise SystemExit(f"error: {src} works at {meta[contract.META_SIZE]}², the transport at {SIZE}²")
    crops, index = load_prepared(cfg)
    if args.rebuild:
        rows = realism_sample(index, load_labels(cfg.paths.cache_dir), "train", seed=cfg.evaluate.seed, max_per_class=8).edit_rows
        module, description, worst = rebuild(src, out, args.version, np.stack([resize_crop(np.asarray(crops[r]), SIZE) for r in rows[:8]]))
        return finish(src, out, args, meta, description, worst)
    sample = realism_sample(index, load_labels(cfg.paths.cache_dir), "train", seed=cfg.evaluate.seed, max_per_class=args.faces)
    inputs = np.stack([resize_crop(np.asarray(crops[r]), SIZE) for r in sample.edit_rows])
    reals = np.stack([resize_crop(np.asarray(crops[r]), SIZE) for r in sample.real_rows])
    torch.set_num_threads(cfg.evaluate.threads)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        base = without_transport(src, Path(tmp) / "base.onnx") if args.refit else src
        module, description, worst = fit_and_attach(base, out, args, inputs, reals)
    return finish(src, out, args, meta, description, worst)


def without_transport(src: Path, out: Path) -> Path:
    """Write ``src`` (a model with a transported shade) to ``out`` without it: the shade output is the
    model's mean shade again, as before ``python -m training transport``. Returns ``out``."""
    import onnx

    from smilecore import contract

    from .export import save_with_meta
    from .graph_parts import remove_part

    model = onnx.load(str(src))
    remove_part(model, PREFIX, {MEAN_SHADE: contract.OUTPUT_SHADE})
    meta = {p.key: p.value for p in model.metadata_props if p.key != "smile.transport"}
    del model.metadata_props[:]
    save_with_meta(model, out, meta)
    return out


def fit_and_attach(src: Path, out: Path, args: argparse.Namespace, inputs: np.ndarray,
                   reals: np.ndarray) -> tuple[Transport, str, float]:
    """Fit the transport on ``src``'s edits of ``inputs`` against ``reals`` and write ``src`` with it to
    ``out`` (checked against PyTorch first); returns (module, description, largest shade difference)."""
    from .export import weights_to_fp16

    edited = {lam: edited_features(src, inputs, lam) for lam in LAMS}
    basis, maps, offsets = fit(edited, crop_features(reals), args.components)
    module = Transport(basis, maps, offsets, args.gains).eval()
    description = (f"fitted on the train split's matched realism sample ({len(inputs)} neutral faces edited at λ = 1 and 2, "
                   f"{len(reals)} real smiles of other people): a Gaussian optimal-transport map in each of {basis.shape[0]} "
                   f"patches of the lower face's log-luminance ({GRID[0]}×{GRID[1]} grid, {args.components} components), "
                   f"its shade ({args.gains[0]:g} and {args.gains[1]:g} of the λ = 1 and 2 maps') limited to ±{LIMIT:g}, outside the painted mouth, "
                   f"fading in from λ = 0 to 1; {SHAPING}"
                   + ("; refitted on this model's own edits, its previous maps taken out" if args.refit else ""))
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        part, merged = Path(tmp) / "transport.onnx", Path(tmp) / out.name
        export_transport(module, part)
        weights_to_fp16(part)
        attach(src, part, merged, args.version, description)
        worst = check_merged(src, merged, module, inputs[:8])  # nothing is written at OUT unless it passes
        merged.replace(out)
    return module, description, worst


def finish(src: Path, out: Path, args: argparse.Namespace, meta: dict[str, str], description: str, worst: float) -> int:
    """Write the card of the model just written at ``out``, register it if asked, print what was done; returns 0."""
    from smilecore import contract
    from smilecore.digest import file_sha256

    from .export import register_bundled

    digest, nbytes = file_sha256(out), out.stat().st_size
    card = out.with_suffix(".md")
    card.write_text(transport_card(src, out, args.version, description, digest, nbytes,
                                   [json.loads(Path(m).read_text()) for m in args.metrics],
                                   Path(args.failures).read_text() if args.failures else "", rebuilt=args.rebuild,
                                   refitted=args.refit))
    if args.register:
        register_bundled(out, card, meta.get(contract.META_NAME, "smile-mobileunet"), args.version, digest, nbytes)
    print(json.dumps({"onnx": str(out), "card": str(card), "sha256": digest, "bytes": nbytes, "max_shade_error": worst}, indent=1))
    return 0
