"""``python -m training export``: a trained checkpoint -> contract ONNX model + model card.

The model follows docs/model-contract.md (opset 17, inputs ``face``/``strength``,
outputs ``rgb``/``mask``/``flow``, dynamic batch ``N``, ``smile.*`` metadata).
After writing, the file is loaded through :class:`smilecore.model.SmileModel`
(the engine's own contract check) and its outputs are compared with PyTorch's.
Optionally the weights are stored as float16 (inputs and outputs stay float32;
ONNX Runtime folds the casts at load).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from smilecore import contract
from smilecore.align import CROP_SIZE, TEMPLATE_VERSION
from smilecore.digest import file_sha256

from .config import load_config
from .nets import ResolutionAdapter, build_net, count_macs, count_params, network_input

#: Licence of every model trained on the project's face data (see shared/data/README.md).
MODEL_LICENSE = "research-non-commercial"


class ExportError(Exception):
    """A one-line reason the export failed."""


def load_generator(path: str | Path, size: int = CROP_SIZE) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Build the network stored in a checkpoint (``best.pt``/``final.pt``/``stage-*.pt`` or ``last.pt``; EMA weights),
    ready to run on ``size``² crops: a net trained at a smaller size is wrapped in
    :class:`training.nets.ResolutionAdapter`."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"checkpoint {path} does not exist")
    ck = torch.load(path, map_location="cpu", weights_only=False)
    state = ck.get("state") or ck.get("ema")
    if state is None:
        raise ExportError(f"{path} holds no generator weights (keys: {', '.join(ck)})")
    kwargs = dict(ck.get("net_kwargs", {}))
    if "widths" in kwargs:
        kwargs["widths"] = tuple(kwargs["widths"])
    net = build_net(ck.get("arch", "mobile_unet"), **kwargs)
    net.load_state_dict(state)
    if ck.get("atlas"):
        net.heads.use_atlas = True  # weights from an `atlas` stage draw their RGB from the teeth picture
    train_size = int(ck.get("train_size", size))
    if train_size != size:
        net = ResolutionAdapter(net, train_size, size)
    return net.eval(), ck


class _ContractWrapper(torch.nn.Module):
    """Gives the exported graph the contract's output order and clamps the mask to [0, 1]."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, face: torch.Tensor, strength: torch.Tensor):
        rgb, mask, flow = self.net(face, strength)
        return rgb, mask.clamp(0.0, 1.0), flow


def export_onnx(net: torch.nn.Module, out: Path, size: int, meta: dict[str, str]) -> None:
    """Trace ``net`` to ``out`` (opset 17, dynamic batch) and set the metadata."""
    import onnx

    wrapper = _ContractWrapper(net).eval()
    face = torch.zeros(1, 3, size, size)
    strength = torch.ones(1, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.onnx")
    with torch.no_grad():
        torch.onnx.export(
            wrapper, (face, strength), str(tmp), dynamo=False, opset_version=17,
            input_names=[contract.INPUT_FACE, contract.INPUT_STRENGTH],
            output_names=[contract.OUTPUT_RGB, contract.OUTPUT_MASK, contract.OUTPUT_FLOW],
            dynamic_axes={n: {0: "N"} for n in (contract.INPUT_FACE, contract.INPUT_STRENGTH, contract.OUTPUT_RGB,
                                                contract.OUTPUT_MASK, contract.OUTPUT_FLOW)},
            do_constant_folding=True,
        )
    model = onnx.load(str(tmp))
    onnx.helper.set_model_props(model, meta)
    model.producer_name = "smile-filter training.export"
    onnx.checker.check_model(model)
    onnx.save(model, str(tmp))
    tmp.replace(out)


def save_with_meta(model, out: Path, updates: dict[str, str]) -> None:
    """Save ``model`` (an ``onnx.ModelProto``) to ``out`` with its metadata updated by ``updates``,
    after ONNX's checker has passed it."""
    import onnx

    meta = {p.key: p.value for p in model.metadata_props}
    meta.update(updates)
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    onnx.save(model, str(out))


def weights_to_fp16(path: Path, min_elements: int = 1024) -> None:
    """Store large float32 initializers as float16, each followed by a Cast back to float32."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    g = model.graph
    casts = []
    for init in list(g.initializer):
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        arr = numpy_helper.to_array(init)
        if arr.size < min_elements:
            continue
        name = init.name
        half = numpy_helper.from_array(arr.astype(np.float16), name + "_fp16")
        g.initializer.remove(init)
        g.initializer.append(half)
        casts.append(helper.make_node("Cast", [name + "_fp16"], [name], to=onnx.TensorProto.FLOAT, name="cast_" + name))
    for i, node in enumerate(casts):
        g.node.insert(i, node)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def compare_with_torch(net: torch.nn.Module, path: Path, size: int, seed: int = 0) -> dict[str, float]:
    """Max |ONNX − PyTorch| per output on a random batch over several strengths, and the λ = 0 outputs.

    ``rgb`` counts only what can reach a photo: its difference times the mask (``rgb`` under a zero
    mask is never used; the TeethAtlas's sharp picture turns tiny shifts of its coordinates into
    large RGB differences at tooth edges, which matter only where the mask shows them)."""
    from smilecore.model import SmileModel

    model = SmileModel(path)  # the engine's own contract check
    if model.size != size:
        raise ExportError(f"exported size {model.size} != {size}")
    rng = np.random.default_rng(seed)
    crops = rng.integers(0, 256, (4, size, size, 3), dtype=np.uint8)
    try:
        from skimage import data
        import cv2

        crops[0] = cv2.resize(data.astronaut(), (size, size), interpolation=cv2.INTER_AREA)
    except Exception:
        pass
    lams = np.array([-1.0, 0.0, 1.0, 3.0], np.float32)
    got = model.run(crops, lams)
    x = network_input(crops)
    with torch.no_grad():
        rgb, mask, flow = _ContractWrapper(net).eval()(x, torch.from_numpy(lams[:, None]))
    diff = {
        "rgb": float((np.abs(got.rgb - rgb.numpy()) * np.maximum(got.mask, mask.numpy())).max()),
        "mask": float(np.abs(got.mask - mask.numpy()).max()),
        "flow": float(np.abs(got.flow - flow.numpy()).max()),
        "lambda0_mask_max": float(np.abs(got.mask[1]).max()),
        "lambda0_flow_max": float(np.abs(got.flow[1]).max()),
        "flow_max_lambda3": float(np.abs(got.flow[3]).max()),
    }
    return diff


def model_card(name: str, version: str, ck: dict[str, Any], net: torch.nn.Module, size: int, digest: str,
               nbytes: int, check: dict[str, float], metrics: dict[str, Any] | None, fp16: bool) -> str:
    """The Markdown model card written next to the ONNX file."""
    cfg = ck.get("config") or {}
    stages = cfg.get("stages", [])
    lines = [
        f"# {name} {version}",
        "",
        "Smile-editing network for the Smile filter: an aligned face crop and a strength λ in,",
        "a backward flow, a blend mask and synthesised pixels out (docs/model-contract.md).",
        "",
        "## Licence and intended use",
        "",
        f"**{MODEL_LICENSE}.** The weights were trained on face photographs from research datasets whose",
        "terms forbid commercial use and redistribution of the images; the weights inherit those terms.",
        "Intended use: personal, offline editing of one's own photos and research. Not for identity",
        "verification, surveillance, making people appear to express what they did not, or any commercial use.",
        "",
        "## Data",
        "",
        "| source | use | terms |",
        "|---|---|---|",
        "| UTKFace (subset, 9,380 faces) | neutral inputs (classifier-labelled), real smilers for the discriminator | non-commercial research only |",
        "| expressions (LFW-based neutral/happiness, 791 people) | neutral inputs, real smilers, the smile direction | research use; labels Apache-2.0 |",
        "| GENKI-4K | smile classifier training | research use (MPLab GENKI-4K) |",
        "",
        "Faces are aligned with dlib's 5-point landmarks to the `" + TEMPLATE_VERSION + "` template; dlib's 68-point",
        "model (non-commercial) was used only during training, to build the teacher's targets.",
        "Split by person: train / val / test; the validation split was never used for tuning beyond LR plateaus.",
        "",
        "## Architecture",
        "",
        f"`{ck.get('arch', 'mobile_unet')}` {json.dumps(ck.get('net_kwargs', {}))}: {count_params(net) / 1e6:.2f} M parameters, "
        f"{2 * count_macs(net, size) / 1e9:.2f} GFLOPs ({count_macs(net, size) / 1e9:.2f} GMACs) per {size}² crop.",
        f"Trained at {ck.get('train_size', size)}² crops" + (f"; the exported graph box-filters the {size}² input down, runs the net there and upsamples its outputs (flow ×{size // int(ck.get('train_size', size))})." if int(ck.get('train_size', size)) != size else "."),
        "Depthwise-separable encoder-decoder, learned skip-fusion weights α per level, λ as input channel and FiLM;",
        "flow and mask are multiplied by functions of λ that are 0 at λ = 0, so λ = 0 returns the input exactly.",
        "",
        "## Training recipe",
        "",
        "Teacher (training.teacher): the crop warped by a thin-plate spline that moves the 68 landmarks by λ × the",
        "mean neutral→happy landmark displacement; where the mouth opens, an open mouth is pasted in under a soft mask.",
        "Until the `atlas` stage that mouth is a real one from a smiling donor face of the train split (one of the 16",
        "donors with the most visible, sharpest teeth, drawn from the 4 closest in mouth opening; in `teeth` and `keep`",
        "the closest of the best 4).",
    ]
    if ck.get("atlas"):
        lines += [
            "From the `atlas` stage on it is one mouth drawn by code (training/teeth.py; no photo pixels), hung from the",
            "target's upper lip so the teeth keep their size while a wider opening shows more of the dark mouth behind them,",
            "and the network draws the mouth by sampling that same picture (`TeethAtlas`): it predicts picture",
            "coordinates, supervised by the teacher's own (`uv`), and a brightness gain; the picture turns grey in grey photos.",
            "This model's RGB comes from that path; its earlier RGB conv head is not in the exported graph.",
        ]
    lines += [
        "Losses: L1 + SSIM on the composited output,",
        "L1 flow supervision, a class-balanced cross-entropy on the mask (`mask`; the mouth interior is ~1-2 % of",
        "the crop), L1 of the RGB head inside the teacher's mask (`rgb`), flow TV, a mouth-region PatchGAN (hinge)",
        "against real smiling faces with feature matching, and a smile-classifier ranking term (output must score",
        "higher than the input for λ > 0).",
        f"Trained {ck.get('step', '?')} steps (EMA weights), curriculum:",
        "",
        "| stage | ends before step (or fraction of steps) | size | λ range | weights |",
        "|---|---|---|---|---|",
    ]
    for s in stages:
        ends = s.get("until_step") if s.get("until_step") is not None else s.get("until", 1.0)
        lines.append(f"| {s.get('name')} | {ends} | {s.get('size')} | [{s.get('lam_min')}, {s.get('lam_max')}] | {json.dumps(s.get('weights', {}))} |")
    lines += [
        "",
        "## Metrics (validation split)",
        "",
    ]
    if metrics:
        lines.append(metrics.get("markdown", "```\n" + json.dumps(metrics, indent=1) + "\n```"))
    else:
        lines.append("Not evaluated yet: run `python -m training evaluate`.")
    lines += [
        "",
        "## Known failure cases",
        "",
    ]
    if ck.get("atlas"):
        lines += [
            "- Every opened mouth shows the same drawn set of teeth, scaled to the mouth and shaded to the photo:",
            "  separate, regular, clean teeth, a little artificial close up, and not the person's own. On faces that",
            "  already show teeth, strengths ≥ 2 replace them with the drawn set. λ = 1 (mostly a closed-mouth smile)",
            "  is the most natural setting. Model 1.1.0 drew a smooth white band instead of teeth, 1.0.0 no teeth at all.",
            "- The blend mask is predicted at a quarter of the crop's resolution, so the mouth's edge is soft: a faint",
            "  halo of the drawn mouth can show on the lips. Very large λ (> 3) exaggerates the mouth.",
        ]
    else:
        lines += [
            "- Teeth are drawn as a bright, teeth-shaped band without individual teeth; on faces that already show",
            "  teeth the band replaces them at λ ≥ 2. λ = 1 (a closed-mouth smile) is the most natural setting.",
            "- Teeth and mouth interiors are learned from other people's mouths (the teacher's donors): they are",
            "  plausible, not the person's own teeth; very large λ (> 3) exaggerates the mouth and can smear its corners.",
        ]
    lines += [
        "- Negative λ (less smile) is learned from the same warp run backwards; it is weaker and less tested.",
        "- Trained at 128² for most steps on a CPU budget; fine detail at 256² is limited.",
        "- Profile faces, occluded mouths (hands, microphones, beards), and faces smaller than ~60 px are out of distribution.",
        "- Training faces are mostly adults from web photographs (LFW/UTKFace): other groups may be served worse.",
        "",
        "## File",
        "",
        f"- ONNX opset 17, contract {contract.CONTRACT_VERSION}, weights {'float16' if fp16 else 'float32'}, inputs/outputs float32",
        f"- size {nbytes} bytes, sha256 `{digest}`",
        f"- ONNX Runtime vs PyTorch max abs difference: rgb × mask {check['rgb']:.2e}, mask {check['mask']:.2e}, flow {check['flow']:.2e} px;"
        f" at λ = 0 mask max {check['lambda0_mask_max']:.1e}, flow max {check['lambda0_flow_max']:.1e}",
        f"- exported {time.strftime('%Y-%m-%d')}",
        "",
    ]
    return "\n".join(lines)


def source_card(src: Path) -> Path:
    """The model card of the model file ``src``: ``<src>.md`` beside it, else the bundled
    ``smilecore/models/MODEL_CARD.md`` if that card is ``src``'s (its header names the file's
    checksum). Exits with a one-line error when neither is."""
    from smilecore.digest import file_sha256

    card = src.with_suffix(".md")
    if card.exists():
        return card
    card = Path(__file__).resolve().parent.parent / "smilecore" / "models" / "MODEL_CARD.md"
    if not card.exists() or file_sha256(src) not in card.read_text().split("\n## ", 1)[0]:
        raise SystemExit(f"error: no card for {src.name}: put its model card beside it as {src.with_suffix('.md').name} "
                         "(the bundled MODEL_CARD.md is another model's)")
    return card


def register_bundled(onnx_path: Path, card: Path, name: str, version: str, digest: str, nbytes: int,
                     models_dir: Path | None = None) -> Path:
    """Copy an exported model into the package (``smilecore/models``) and make it the registry's default.

    Older bundled files of the same ``name`` are removed from the folder and the registry, so
    the wheel carries exactly one default model.  Returns the bundled file's path.
    """
    import shutil

    models_dir = models_dir or Path(__file__).resolve().parent.parent / "smilecore" / "models"
    reg_path = models_dir / "registry.json"
    reg = json.loads(reg_path.read_text())
    fname = f"{name}-{version}.onnx"
    kept = []
    for m in reg.get("models", []):
        if m.get("name") == name and m.get("bundled"):
            old = models_dir / m["file"]
            if old.exists() and old.name != fname:
                old.unlink()
            continue
        kept.append(m)
    dest = models_dir / fname
    if onnx_path.resolve() != dest.resolve():
        shutil.copyfile(onnx_path, dest)
    shutil.copyfile(card, models_dir / "MODEL_CARD.md")
    kept.insert(0, {"name": name, "version": version, "file": fname, "sha256": digest, "size": nbytes,
                    "license": MODEL_LICENSE, "url": None, "bundled": True,
                    "description": "Mobile UNet trained by training/ (see MODEL_CARD.md)"})
    reg["default"] = name
    reg["models"] = kept
    reg_path.write_text(json.dumps(reg, indent=2) + "\n")
    return dest


def main(argv: list[str] | None = None) -> int:
    """``python -m training export --out PATH [--checkpoint PATH] [--fp16] [--version V] [--metrics JSON]``."""
    ap = argparse.ArgumentParser(prog="python -m training export", description="export a checkpoint to a contract ONNX model")
    ap.add_argument("--config", default=None, help="config TOML (default training/config.toml)")
    ap.add_argument("--checkpoint", default=None, help="checkpoint (default runs/<run_name>/best.pt, else final.pt, else last.pt)")
    ap.add_argument("--out", required=True, help="output .onnx path (a model card .md is written beside it)")
    ap.add_argument("--fp16", action="store_true", help="store weights as float16 (kept only if outputs stay within tolerance)")
    ap.add_argument("--version", default=None, help="model version (default [export] model_version)")
    ap.add_argument("--name", default=None, help="model name (default [export] name)")
    ap.add_argument("--metrics", default=None, help="evaluation JSON to put in the model card (default eval/metrics.json if present)")
    ap.add_argument("--register", action="store_true",
                    help="also bundle it: copy to smilecore/models/<name>-<version>.onnx, MODEL_CARD.md, and make it the registry's default")
    args = ap.parse_args(argv)
    try:
        cfg = load_config(args.config)
        e = cfg.export
        if args.checkpoint:
            ckpt = Path(args.checkpoint)
        else:
            rd = cfg.run_dir()
            ckpt = next((rd / n for n in ("best.pt", "final.pt", "last.pt") if (rd / n).exists()), rd / "best.pt")
        out = Path(args.out)
        if out.suffix.lower() != ".onnx":
            raise ExportError(f"--out must end in .onnx, got {out}")
        size = e.size
        version = args.version or e.model_version
        name = args.name or e.name
        net, ck = load_generator(ckpt, size)
        meta = {
            contract.META_CONTRACT: contract.CONTRACT_VERSION,
            contract.META_SIZE: str(size),
            contract.META_TEMPLATE: TEMPLATE_VERSION,
            contract.META_STRENGTH_MIN: str(e.strength_min),
            contract.META_STRENGTH_MAX: str(e.strength_max),
            contract.META_MODEL_VERSION: version,
            contract.META_LICENSE: MODEL_LICENSE,
            contract.META_NAME: name,
        }
        export_onnx(net, out, size, meta)
        check = compare_with_torch(net, out, size)
        tol, flow_tol = e.tolerance, e.flow_tolerance
        if check["rgb"] > tol or check["mask"] > tol or check["flow"] > flow_tol:
            raise ExportError(f"ONNX Runtime disagrees with PyTorch: {check}")
        fp16 = False
        if args.fp16:
            backup = out.read_bytes()
            weights_to_fp16(out)
            c16 = compare_with_torch(net, out, size)
            ftol = e.fp16_tolerance
            if c16["rgb"] <= ftol and c16["mask"] <= ftol and c16["flow"] <= 10 * ftol:
                check, fp16 = c16, True
            else:
                out.write_bytes(backup)
                print(f"fp16 weights changed outputs too much ({c16}); kept float32", file=sys.stderr)
        metrics = None
        mpath = Path(args.metrics) if args.metrics else cfg.cache / "eval" / "metrics.json"
        if mpath.exists():
            metrics = json.loads(mpath.read_text())
        digest, nbytes = file_sha256(out), out.stat().st_size
        card = out.with_suffix(".md")
        card.write_text(model_card(name, version, ck, net, size, digest, nbytes, check, metrics, fp16))
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.register:
        register_bundled(out, card, name, version, digest, nbytes)
    print(json.dumps({"onnx": str(out), "card": str(card), "checkpoint": str(ckpt), "step": ck.get("step"),
                      "sha256": digest, "bytes": nbytes, "fp16": fp16, "check": check}, indent=1))
    return 0
