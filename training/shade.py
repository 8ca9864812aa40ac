"""``python -m training shade``: give an exported model the shading of real smiles (model contract 2).

A warp moves the face but cannot light it: real smiles also lift and light the cheeks and deepen
the nasolabial folds, and the realism test (``python -m training realism-regions``) sees it: on the
validation split the cheeks alone tell model 1.2.0's λ = 1 edits from real smiles with AUC 0.90.
This step learns that change from the train split's same-person neutral/happy pairs
(:func:`training.appearance.fit_appearance`: the mean log-luminance change that remains after
warping both photos onto one landmark frame) and adds it to an exported contract-1 model as the
``shade`` output of contract 2 (docs/model-contract.md)::

    shade = field · clip(gain · λ, 0, gain · saturate) · (1 − mask)

``field`` is the learned [S, S] map in the crop's frame (the frame of the mean *happy* landmarks,
where the edited face's features lie), ``gain`` the share of the mean change per unit of λ and
``saturate`` the λ beyond which it stops growing; nothing shades below λ = 0 or inside the
painted mouth. The network's weights are unchanged.

The strength the network sees saturates too (issue 15: "the scale saturates instead of
stretching linearly"): up to ``knee`` it is λ itself, beyond it ``knee + soft·tanh((λ − knee)/soft)``
(default knee 2, soft 1: λ = 3 → 2.76, λ = 4 → 2.96), so a network trained on the linear Eq. 1
geometry, whose λ = 2 already reaches the 90th percentile of real smiles, no longer stretches
the mouth into a grin beyond any real smile at λ = 3–4. It is one mean field for everyone: the
crudest form of the issue's per-face appearance model, until a network learns its own shade.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .config import load_config

#: Share of the mean real change per unit of λ, and the λ where it stops growing (chosen on the
#: validation split's realism test: see docs/realism.md).
GAIN = 0.7
SATURATE = 1.5
#: The network's strength: λ up to KNEE, then KNEE + SOFT·tanh((λ − KNEE)/SOFT).
KNEE = 2.0
SOFT = 1.0
#: Names of the initializers this step adds (read back by ``training.tune``).
FIELD, GAIN_NAME, MAX_NAME = "shade_field", "shade_gain", "shade_max"
KNEE_NAME, SOFT_NAME = "sat_knee", "sat_soft"


def saturate_strength(model, knee: float, soft: float) -> None:
    """Make the network of ``model`` (an ``onnx.ModelProto``, changed in place) see a saturating
    strength: every node that read the ``strength`` input reads ``knee + soft·tanh((λ − knee)/soft)``
    above ``knee`` (λ itself below)."""
    from onnx import helper, numpy_helper

    from smilecore import contract

    g = model.graph
    net_in = "strength_saturated"
    for node in g.node:
        node.input[:] = [net_in if i == contract.INPUT_STRENGTH else i for i in node.input]
    g.initializer.extend([numpy_helper.from_array(np.float32(knee), KNEE_NAME),
                          numpy_helper.from_array(np.float32(soft), SOFT_NAME)])
    first = [
        helper.make_node("Sub", [contract.INPUT_STRENGTH, KNEE_NAME], ["sat_over"]),
        helper.make_node("Relu", ["sat_over"], ["sat_d"]),  # how far above the knee (0 below)
        helper.make_node("Div", ["sat_d", SOFT_NAME], ["sat_x"]),
        helper.make_node("Tanh", ["sat_x"], ["sat_t"]),
        helper.make_node("Mul", ["sat_t", SOFT_NAME], ["sat_kept"]),
        helper.make_node("Sub", [contract.INPUT_STRENGTH, "sat_d"], ["sat_base"]),
        helper.make_node("Add", ["sat_base", "sat_kept"], [net_in]),
    ]
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(first + nodes)


def add_shade(src: Path, out: Path, field: np.ndarray, gain: float, saturate: float, version: str,
              description: str, knee: float | None = None, soft: float = SOFT) -> None:
    """Write ``src`` (a contract-1 ONNX model) to ``out`` with the contract-2 ``shade`` output (and,
    with a ``knee``, the saturating strength of :func:`saturate_strength`)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from smilecore import contract

    model = onnx.load(str(src))
    meta = {p.key: p.value for p in model.metadata_props}
    if meta.get(contract.META_CONTRACT) != contract.CONTRACT_VERSION:
        raise SystemExit(f"error: {src} follows contract {meta.get(contract.META_CONTRACT)}, expected {contract.CONTRACT_VERSION}")
    size = int(meta[contract.META_SIZE])
    if field.shape != (size, size):
        raise SystemExit(f"error: the field is {field.shape}, the model works at {size}x{size}")
    if knee is not None:
        saturate_strength(model, knee, soft)
    g = model.graph
    g.initializer.extend([
        numpy_helper.from_array(field.reshape(1, 1, size, size).astype(np.float32), FIELD),
        numpy_helper.from_array(np.float32(gain), GAIN_NAME),
        numpy_helper.from_array(np.float32(0.0), "shade_min"),
        numpy_helper.from_array(np.float32(gain * saturate), MAX_NAME),
        numpy_helper.from_array(np.float32(1.0), "shade_one"),
        numpy_helper.from_array(np.array([-1, 1, 1, 1], np.int64), "shade_shape"),
    ])
    g.node.extend([
        helper.make_node("Mul", [contract.INPUT_STRENGTH, GAIN_NAME], ["shade_l"]),
        helper.make_node("Clip", ["shade_l", "shade_min", MAX_NAME], ["shade_amount"]),
        helper.make_node("Reshape", ["shade_amount", "shade_shape"], ["shade_amount4"]),
        helper.make_node("Sub", ["shade_one", contract.OUTPUT_MASK], ["shade_keep"]),
        helper.make_node("Mul", [FIELD, "shade_amount4"], ["shade_scaled"]),
        helper.make_node("Mul", ["shade_scaled", "shade_keep"], [contract.OUTPUT_SHADE]),
    ])
    g.output.append(helper.make_tensor_value_info(contract.OUTPUT_SHADE, TensorProto.FLOAT, ["N", 1, size, size]))
    from .export import save_with_meta

    save_with_meta(model, out, {contract.META_CONTRACT: contract.CONTRACT_SHADE, contract.META_MODEL_VERSION: version,
                                "smile.shade": description})


def main(argv: list[str] | None = None) -> int:
    """``python -m training shade --model IN.onnx --out OUT.onnx --version V [--gain G] [--saturate L] [--register]``."""
    ap = argparse.ArgumentParser(prog="python -m training shade", description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=None)
    ap.add_argument("--model", required=True, help="an exported contract-1 model (.onnx)")
    ap.add_argument("--out", required=True, help="the contract-2 model to write (.onnx; a model card .md beside it)")
    ap.add_argument("--version", required=True, help="the new model's version")
    ap.add_argument("--gain", type=float, default=GAIN, help=f"share of the mean real change per unit of λ (default {GAIN})")
    ap.add_argument("--saturate", type=float, default=SATURATE, help=f"λ beyond which the shading stops growing (default {SATURATE})")
    ap.add_argument("--knee", type=float, default=KNEE, help=f"the network's strength saturates above this λ (default {KNEE}; "
                    "a negative value: no saturation)")
    ap.add_argument("--soft", type=float, default=SOFT, help=f"how far above the knee it can still rise (default {SOFT})")
    ap.add_argument("--metrics", nargs="*", default=[], help="metrics.json files of `evaluate --model OUT` (e.g. val and test) for its card")
    ap.add_argument("--register", action="store_true", help="bundle it as the default model (smilecore/models)")
    args = ap.parse_args(argv)
    from .appearance import fit_appearance
    from smilecore.digest import file_sha256 as sha256

    from .export import register_bundled
    from .prepare import load_prepared

    cfg = load_config(args.config)
    crops, index = load_prepared(cfg)
    train = np.flatnonzero((index["source"] == "expressions") & (index["split"] == "train"))
    app = fit_appearance(crops, index["lm68"], index["person"], index["label"], train)
    src, out = Path(args.model), Path(args.out)
    from .export import source_card

    source_card(src)  # before anything is written: the new card embeds the source's
    knee = args.knee if args.knee >= 0 else None
    description = (f"mean log-luminance change of {app.people} people's same-person neutral/happy pairs (train split), "
                   f"x {args.gain:g} per unit of strength up to {args.saturate:g}")
    if knee is not None:
        description += f"; the network's strength saturates above {knee:g} (knee + {args.soft:g}·tanh((λ − knee)/{args.soft:g}))"
    add_shade(src, out, app.field, args.gain, args.saturate, args.version, description, knee, args.soft)
    digest, nbytes = sha256(out), out.stat().st_size
    card = out.with_suffix(".md")
    card.write_text(shade_card(src, out, args.version, description, digest, nbytes,
                               [json.loads(Path(m).read_text()) for m in args.metrics]))
    if args.register:
        from smilecore import contract
        import onnx

        name = {p.key: p.value for p in onnx.load(str(out)).metadata_props}.get(contract.META_NAME, "smile-mobileunet")
        register_bundled(out, card, name, args.version, digest, nbytes)
    print(json.dumps({"onnx": str(out), "card": str(card), "sha256": digest, "bytes": nbytes, "people": app.people,
                      "field_range": [float(app.field.min()), float(app.field.max())]}, indent=1))
    return 0


def shade_card(src: Path, out: Path, version: str, description: str, digest: str, nbytes: int,
               metrics: list[dict]) -> str:
    """The new model's card: what the shading adds, then the source model's card (its network and training)."""
    from .export import source_card

    base = source_card(src).read_text()
    lines = [f"# {out.stem.rsplit('-', 1)[0]} {version}", "",
             f"Model {version} is the network of `{src.name}` (weights unchanged) with the **shade** output of model",
             "contract 2 (docs/model-contract.md), added by `python -m training shade`: the mean change of",
             "luminance that real smiles make beyond their geometry (lit, lifted cheeks; deeper nasolabial folds;",
             "the lower eyelids), learned from the train split's same-person neutral/happy pairs",
             f"({description}). It is applied outside the painted mouth only.", "",
             f"- file: `{out.name}`, {nbytes} bytes, sha256 `{digest}`",
             "- licence: research-non-commercial (the field is learned from the same research photos as the network)",
             "- what it does not do: it is one mean field for every face, moved with the face only as far as the",
             "  alignment template does; it does not follow the light of the photo. The mouth is still the",
             "  drawn one of the network below (the main tell at λ = 2: see docs/realism.md), except on faces",
             "  that already show their teeth: the engine keeps those (smilecore/facemesh.py).", ""]
    lines += evaluation_sections(metrics)
    lines += ["## The network (the card of the source model)", ""]
    body = without_evaluations(base.split("\n", 1)[1] if base.startswith("# ") else base)
    return "\n".join(lines) + body.replace("\n## ", "\n### ")


#: How the title of each evaluation section of a model card begins (:func:`evaluation_sections`).
EVALUATION_TITLE = "Evaluation of this model"


def evaluation_sections(metrics: list[dict]) -> list[str]:
    """A model card's sections for the ``metrics.json`` of `python -m training evaluate --model OUT` (one per split)."""
    lines: list[str] = []
    for m in metrics:
        lines += [f"## {EVALUATION_TITLE}: {m.get('split', '?')} split ({m.get('faces', '?')} faces)", "",
                  "(`python -m training evaluate --model`, which composites as the engine does: a face that already",
                  "shows its teeth keeps them, see smilecore/facemesh.py.)", "",
                  m.get("markdown", "```json\n" + json.dumps(m.get("per_lambda", {}), indent=1) + "\n```"), ""]
    return lines


if __name__ == "__main__":
    sys.exit(main())


def without_evaluations(card: str) -> str:
    """A model card's Markdown less its evaluation sections (:data:`EVALUATION_TITLE`, at any heading
    level, each up to the next heading of its level or above): what a derived model's card keeps of
    its source's, whose evaluations stay in that model's own card."""
    out: list[str] = []
    cut = 0  # the level of the section being left out; 0: none
    for line in card.split("\n"):
        level = len(line) - len(line.lstrip("#")) if line.startswith("#") and line.lstrip("#").startswith(" ") else 0
        if cut and level and level <= cut:
            cut = 0
        if not cut and level >= 2 and line.lstrip("#").strip().startswith(EVALUATION_TITLE):
            cut = level
        if not cut:
            out.append(line)
    return "\n".join(out)
