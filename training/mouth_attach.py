"""``python -m training mouth-attach``: put the mouth network inside an exported smile model.

The smile network's ``rgb`` output is where it paints the inside of the mouth (where its ``mask``
is above 0). This step appends the mouth network (training/mouth_net.py, trained by ``python -m
training mouth``) to the model's graph: it warps the ``face`` along the ``flow``, frames the
opening the ``mask`` marks, and redraws the opening and the lips around it from the face around
them; its fill becomes the model's ``rgb`` and the repainted region its ``mask``. The smile
network's own paint (its drawn mouth) is then used by nothing, and the merged graph drops it: the
file holds no drawn mouth. Inputs, outputs and contract stay as they were
(docs/model-contract.md), so the engine runs the new file as it ran the old one; only the mouth
changes.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

#: The smile network's own mask, renamed inside the merged graph (the mouth network and the shade read it).
NET_MASK = "mouth_mask_net"
#: What the smile network's own paint is renamed to: nothing reads it, so it is dropped.
NET_RGB = "mouth_rgb_net"
PREFIX = "mouth/"
#: The repainted mouth's opacity per unit of the opening's strength, and how much of the smile
#: network's soft mask edge counts as opening (training.mouth_net.MouthFill); both chosen on the
#: validation split's realism test (docs/realism.md).
OPACITY = 1.5
SPREAD = 1.6
#: The metadata key that records the mouth frame the attached network draws in (its ``sigma_px``,
#: baked into the graph as a constant): ``tune`` rebuilds the network in that frame.
META_SIGMA = "smile.mouth_sigma_px"


def load_mouth(path: str | Path, grow: int | None = None, opacity: float = OPACITY, spread: float = SPREAD,
               reach: int | None = None):
    """The :class:`~training.mouth_net.MouthFill` module for the weights at ``path`` (``mouth.pt``
    or a training ``checkpoint.pt``), repainting ``grow`` patch pixels around the opening (default
    :data:`~training.mouth_net.GROW`; ``reach`` more sideways, default
    :data:`~training.mouth_net.REACH`) at ``opacity`` times the opening's strength, the mask's soft
    edge counted as opening by ``spread`` (see :class:`~training.mouth_net.MouthFill`), and the
    training step the weights come from."""
    from .mouth_net import GROW, REACH, SIGMA_PX, MouthFill, MouthNet

    state = torch.load(path, map_location="cpu", weights_only=False)
    net = MouthNet(int(state.get("width", 16)))
    net.load_state_dict(state["net"])
    fill = MouthFill(net.eval(), GROW if grow is None else grow, opacity, spread, REACH if reach is None else reach,
                     float(state.get("sigma_px", SIGMA_PX)))
    return fill.eval(), state.get("step")


def export_fill(fill, size: int, out: Path) -> None:
    """Trace ``fill`` (inputs face, mask, flow at ``size``; outputs filled, region) to ONNX opset 17."""
    n = 2
    args = (torch.zeros(n, 3, size, size), torch.zeros(n, 1, size, size), torch.zeros(n, 2, size, size))
    names = ["face", "mask", "flow"]
    with torch.no_grad():
        torch.onnx.export(fill, args, str(out), dynamo=False, opset_version=17, input_names=names, output_names=["filled", "region"],
                          dynamic_axes={k: {0: "N"} for k in names + ["filled", "region"]})


def attach(base_path: Path, fill_path: Path, out: Path, version: str, description: str,
           extra_meta: dict[str, str] | None = None) -> None:
    """Write ``base_path`` (a smile model) to ``out`` with the graph at ``fill_path`` (from
    :func:`export_fill`) deciding its ``rgb`` and ``mask`` outputs (and ``extra_meta`` in its metadata)."""
    import onnx

    from smilecore import contract

    from .export import save_with_meta
    from .graph_parts import append_part, rename_in_graph

    base, extra = onnx.load(str(base_path)), onnx.load(str(fill_path))
    rename_in_graph(base, {contract.OUTPUT_RGB: NET_RGB, contract.OUTPUT_MASK: NET_MASK})
    shared = {"face": contract.INPUT_FACE, "mask": NET_MASK, "flow": contract.OUTPUT_FLOW,
              "filled": contract.OUTPUT_RGB, "region": contract.OUTPUT_MASK}
    append_part(base, extra, shared, PREFIX)
    drop_unused(base)
    save_with_meta(base, out, {contract.META_MODEL_VERSION: version, "smile.mouth": description, **(extra_meta or {})})


def drop_unused(model) -> None:
    """Remove from ``model`` (an ``onnx.ModelProto``, changed in place) every node and initializer that
    no graph output depends on (in the merged graph: the smile network's drawn mouth). For graphs
    without subgraphs (If, Loop), as exported smile models are; ``attach`` checks the result."""
    g = model.graph
    needed = {o.name for o in g.output}
    kept = []
    for node in reversed(list(g.node)):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
    kept.reverse()
    inits = [t for t in g.initializer if t.name in needed]
    del g.node[:]
    g.node.extend(kept)
    del g.initializer[:]
    g.initializer.extend(inits)


def main(argv: list[str] | None = None) -> int:
    """``python -m training mouth-attach --model IN.onnx --mouth mouth.pt --out OUT.onnx --version V [--register]``."""
    ap = argparse.ArgumentParser(prog="python -m training mouth-attach", description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=None)
    ap.add_argument("--model", required=True, help="an exported smile model (.onnx, contract 1 or 2)")
    ap.add_argument("--mouth", default=None, help="the mouth network's weights (default cache/mouth/mouth.pt)")
    ap.add_argument("--regraph", action="store_true",
                    help="--model already has a mouth network: write it with the mouth part's graph exported anew by "
                         "this code (the same weights; the outputs checked against the file's own)")
    ap.add_argument("--out", required=True, help="the model to write (.onnx; a model card .md beside it)")
    ap.add_argument("--version", required=True, help="the new model's version")
    ap.add_argument("--grow", type=int, default=None, help="patch pixels repainted around the opening (default mouth_net.GROW)")
    ap.add_argument("--reach", type=int, default=None,
                    help="patch pixels repainted sideways past the mouth's corners, beyond --grow (default mouth_net.REACH)")
    ap.add_argument("--opacity", type=float, default=OPACITY,
                    help=f"the repainted mouth's opacity per unit of the opening's strength, at most 1 (default {OPACITY:g})")
    ap.add_argument("--spread", type=float, default=SPREAD,
                    help=f"how much of the mask's soft edge counts as opening, ≥ 1 (default {SPREAD:g})")
    ap.add_argument("--metrics", nargs="*", default=[], help="metrics.json files of `evaluate --model OUT` for its card")
    ap.add_argument("--failures", default=None, help="a Markdown file: what the model gets wrong, looked at (for its card)")
    ap.add_argument("--register", action="store_true", help="bundle it as the default model (smilecore/models)")
    args = ap.parse_args(argv)
    import onnx

    from smilecore import contract

    from .config import load_config
    from .mouth_net import SPREAD_FULL

    cfg = load_config(args.config)
    mouth = Path(args.mouth) if args.mouth else cfg.cache / "mouth" / "mouth.pt"
    src, out = Path(args.model), Path(args.out)
    meta = {p.key: p.value for p in onnx.load(str(src)).metadata_props}
    if args.regraph:
        return _regraph_main(src, out, args, meta)
    if "smile.mouth" in meta:
        raise SystemExit(f"error: {src} already has a mouth network ({meta['smile.mouth'][:60]}...)")
    size = int(meta[contract.META_SIZE])
    from .export import source_card

    source_card(src)  # before anything is written: the new card embeds the source's
    fill, step = load_mouth(mouth, args.grow, args.opacity, args.spread, args.reach)
    params = sum(p.numel() for p in fill.net.parameters())
    description = (f"mouth network, {params} parameters, {step if step is not None else '?'} steps of self-supervised mouth completion "
                   f"on the train split's real open smiling mouths (python -m training mouth); repaints {fill.grow} patch pixels "
                   f"around the opening ({fill.grow + fill.reach} sideways, past the corners) at {fill.opacity:g} x the opening's strength (at most opaque), "
                   f"the opening told as min(1, {fill.spread:g} x mask / its maximum) up to mask strength {SPREAD_FULL:g}, "
                   "tapering to the mask itself at 1")
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        part, merged = Path(tmp) / "mouth.onnx", Path(tmp) / out.name
        export_fill(fill, size, part)
        attach(src, part, merged, args.version, description, {META_SIGMA: f"{fill.sigma_px:g}"})
        check_against_torch(merged, fill, size)  # nothing is written at OUT unless it passes
        merged.replace(out)
    return _finish(out, args, meta, lambda digest, nbytes, metrics, failures: mouth_card(
        src, out, args.version, description, digest, nbytes, metrics, failures), {"mouth_parameters": params})


def _finish(out: Path, args: argparse.Namespace, meta: dict[str, str], card_text, report: dict) -> int:
    """Write ``out``'s card (``card_text(digest, nbytes, metrics, failures)``, from ``--metrics`` and
    ``--failures``), bundle it with ``--register``, print what was written and ``report`` as JSON."""
    from smilecore import contract
    from smilecore.digest import file_sha256

    from .export import register_bundled

    digest, nbytes = file_sha256(out), out.stat().st_size
    card = out.with_suffix(".md")
    card.write_text(card_text(digest, nbytes, [json.loads(Path(m).read_text()) for m in args.metrics],
                              Path(args.failures).read_text() if args.failures else ""))
    if args.register:
        register_bundled(out, card, meta.get(contract.META_NAME, "smile-mobileunet"), args.version, digest, nbytes)
    print(json.dumps({"onnx": str(out), "card": str(card), "sha256": digest, "bytes": nbytes, **report}, indent=1))
    return 0


def _regraph_main(src: Path, out: Path, args: argparse.Namespace, meta: dict[str, str]) -> int:
    """``mouth-attach --regraph``: :func:`regraph`, its card, and ``--register``."""
    from .export import source_card
    from .graph_parts import derived_card

    if "smile.mouth" not in meta:
        raise SystemExit(f"error: {src} has no mouth network to regraph (attach one: leave out --regraph)")
    source_card(src)
    worst = regraph(src, out, args.version, args.grow, args.opacity, args.spread, args.reach)
    intro = [f"Model {args.version} is `{src.name}` with its mouth network's graph exported anew (`python -m training "
             "mouth-attach --regraph`): the same weights, the same computation in fewer operations (the frame's "
             f"parameters computed once, the flow and the opening framed together); outputs within {worst:.1e} of the source's.",
             "Trained on research / non-commercial face data: the weights are research / non-commercial too."]
    return _finish(out, args, meta, lambda digest, nbytes, metrics, failures: derived_card(
        src, out, args.version, intro, digest, nbytes, metrics, failures), {"largest_difference": worst})


def regraph(src: Path, out: Path, version: str, grow: int | None = None, opacity: float = OPACITY, spread: float = SPREAD,
            reach: int | None = None, tolerance: float = 1e-4) -> float:
    """Write ``src`` (a model with a mouth network) to ``out`` with the mouth part's graph exported anew
    by :func:`export_fill` from the weights in the file (the file does not record ``grow``,
    ``opacity``, ``spread``, ``reach``: pass them when they are not the defaults). The two files' outputs
    are compared on random faces and the bundled sample at λ from −1 to 3 (``rgb`` where the mask shows it,
    the mask, the flow, the shade); nothing is written unless they agree within ``tolerance``. Returns
    the largest difference."""
    import onnx

    from smilecore import contract

    from .export import save_with_meta
    from .graph_parts import replace_part

    model = onnx.load(str(src))
    size = int({p.key: p.value for p in model.metadata_props}[contract.META_SIZE])
    fill = mouth_from_model(model, grow, opacity, spread, reach)
    shared = {"face": contract.INPUT_FACE, "mask": NET_MASK, "flow": contract.OUTPUT_FLOW,
              "filled": contract.OUTPUT_RGB, "region": contract.OUTPUT_MASK}
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        part, merged = Path(tmp) / "mouth.onnx", Path(tmp) / out.name
        export_fill(fill, size, part)
        replace_part(model, onnx.load(str(part)), shared, PREFIX)
        save_with_meta(model, merged, {contract.META_MODEL_VERSION: version})
        worst = compare_models(src, merged, size)
        if worst > tolerance:
            raise SystemExit(f"error: the regraphed model differs from {src.name} by {worst:.2e} (more than {tolerance:g})")
        merged.replace(out)
    return worst


def compare_models(a_path: Path, b_path: Path, size: int) -> float:
    """Largest difference between two smile models' outputs (``rgb`` times the mask, mask, flow, shade)
    on four random faces and the bundled sample (resized to the crop) at λ = −1, 0, 0.5, 1, 2 and 3;
    ``inf`` when λ = 0 differs at all."""
    from PIL import Image

    from smilecore.model import SmileModel

    rng = np.random.default_rng(0)
    sample = Path(__file__).resolve().parents[1] / "samples" / "astronaut.jpg"
    crops = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(4)]
    if sample.is_file():
        crops.append(np.asarray(Image.open(sample).convert("RGB").resize((size, size), Image.BICUBIC)))
    crops = np.stack(crops)
    a, b = SmileModel(a_path), SmileModel(b_path)
    worst = 0.0
    for lam in (-1.0, 0.0, 0.5, 1.0, 2.0, 3.0):
        lams = np.full(len(crops), lam, np.float32)
        ra, rb = a.run(crops, lams), b.run(crops, lams)
        outs = [(ra.rgb * ra.mask, rb.rgb * rb.mask), (ra.mask, rb.mask), (ra.flow, rb.flow)]
        if ra.shade is not None:
            outs.append((ra.shade, rb.shade))
        if lam == 0.0 and not all(np.array_equal(x, y) for x, y in outs):
            return float("inf")
        worst = max([worst] + [float(np.abs(x - y).max()) for x, y in outs])
    return worst


def check_against_torch(path: Path, fill, size: int, tolerance: float = 2e-3) -> None:
    """Run the merged model on random faces at λ = 2 and compare its ``rgb`` and ``mask`` with the
    PyTorch fill of the same network outputs; ``SystemExit`` if they differ by more than ``tolerance``."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from smilecore import contract

    model = onnx.load(str(path))
    model.graph.output.append(helper.make_tensor_value_info(NET_MASK, TensorProto.FLOAT, ["N", 1, size, size]))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    face = rng.uniform(-1, 1, (2, 3, size, size)).astype(np.float32)
    names = [o.name for o in sess.get_outputs()]
    outs = dict(zip(names, sess.run(names, {contract.INPUT_FACE: face, contract.INPUT_STRENGTH: np.full((2, 1), 2.0, np.float32)})))
    with torch.no_grad():
        rgb, mask = fill(torch.from_numpy(face), torch.from_numpy(outs[NET_MASK]), torch.from_numpy(outs[contract.OUTPUT_FLOW]))
    err = max(float(np.abs(rgb.numpy() - outs[contract.OUTPUT_RGB]).max()), float(np.abs(mask.numpy() - outs[contract.OUTPUT_MASK]).max()))
    if err > tolerance:
        raise SystemExit(f"error: the merged model differs from PyTorch's by {err:.2e}")


def mouth_card(src: Path, out: Path, version: str, description: str, digest: str, nbytes: int, metrics: list[dict],
               failures: str = "") -> str:
    """The new model's card: what the mouth network adds, its ``failures`` (Markdown), then the source model's card."""
    from .graph_parts import derived_card

    intro = [f"Model {version} is `{src.name}` with a **mouth network** inside its graph (`python -m training mouth-attach`):",
             f"{description}. It fills the opening the smile network's mask marks, from the face around it,",
             "in place of the smile network's own painted mouth. Trained on research / non-commercial face data:",
             "the weights are research / non-commercial too."]
    return derived_card(src, out, version, intro, digest, nbytes, metrics, failures)


def mouth_from_model(model, grow: int | None = None, opacity: float = OPACITY, spread: float = SPREAD, reach: int | None = None):
    """The :class:`~training.mouth_net.MouthFill` inside a merged model (a file or its loaded
    ``onnx.ModelProto``), with its weights and its mouth frame (:data:`META_SIGMA`; files from before
    it have the default's). The file does not record ``grow``, ``opacity``, ``spread`` and ``reach``:
    they are the defaults unless given."""
    import onnx
    from onnx import numpy_helper

    from .mouth_net import GROW, REACH, SIGMA_PX, MouthFill

    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model), load_external_data=False)
    net = mouth_network(model)
    if net is None:
        raise SystemExit("error: the model has no mouth network")
    head = PREFIX + "net."
    state = {t.name[len(head):]: torch.from_numpy(numpy_helper.to_array(t).astype(np.float32))
             for t in model.graph.initializer if t.name.startswith(head)}
    net.load_state_dict(state)
    meta = {p.key: p.value for p in model.metadata_props}
    return MouthFill(net.eval(), GROW if grow is None else grow, opacity, spread, REACH if reach is None else reach,
                     float(meta.get(META_SIGMA, SIGMA_PX))).eval()


def mouth_network(path):
    """The :class:`~training.mouth_net.MouthNet` (random weights, the right width) inside the model at
    ``path`` (or that model already loaded), or ``None`` when it has none: for counting its
    parameters and multiply-accumulates."""
    import onnx

    from .mouth_net import MouthNet

    model = path if isinstance(path, onnx.ModelProto) else onnx.load(str(path), load_external_data=False)
    first = next((t for t in model.graph.initializer if t.name == PREFIX + "net.e1.0.weight"), None)
    return None if first is None else MouthNet(int(first.dims[0]))
