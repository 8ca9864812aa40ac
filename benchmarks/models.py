"""Model table (the paper's Table 1, measured here): size, FLOPs and CPU latency of our
Mobile UNet against the paper's baselines, all with the same I/O (docs/model-contract.md).

The baselines are built by ``benchmarks.baselines`` (random weights: latency does not depend on
them) and exported with ``training.export`` (needs the ``[train]`` extra); our model is the bundled default when there is
one.  Latencies are taken interleaved (one call of each model in turn, repeated), so drift of
a shared machine hits all models alike, and reported as ratios too.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

ARCHS = [("ours: Mobile UNet", "mobile_unet"), ("standard UNet", "standard_unet"), ("pix2pix UNet", "pix2pix_unet"),
         ("MobileNetV2-UNet", "mobilenetv2_unet")]


def _export_all(size: int, folder: Path) -> list[dict]:
    import torch

    from smilecore import contract
    from smilecore.align import TEMPLATE_VERSION
    from training.export import export_onnx
    from training.nets import count_macs, count_params

    from .baselines import build

    torch.manual_seed(0)
    rows = []
    for label, arch in ARCHS:
        net = build(arch).eval()
        meta = {
            contract.META_CONTRACT: contract.CONTRACT_VERSION, contract.META_SIZE: str(size),
            contract.META_TEMPLATE: TEMPLATE_VERSION, contract.META_STRENGTH_MIN: "-2", contract.META_STRENGTH_MAX: "4",
            contract.META_MODEL_VERSION: "bench", contract.META_LICENSE: "none", contract.META_NAME: arch,
        }
        path = folder / f"{arch}.onnx"
        export_onnx(net, path, size, meta)
        rows.append({"label": label, "arch": arch, "params": count_params(net), "macs": count_macs(net, size), "path": path})
    return rows


def _inner_size(path: Path, size: int) -> int:
    """The resolution the network of an exported model runs at (its first Resize/AveragePool shrink), else ``size``."""
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    for node in m.graph.node:
        if node.op_type == "AveragePool" and not node.name.startswith("mouth/"):
            k = next((a.ints[0] for a in node.attribute if a.name == "kernel_shape"), 1)
            return size // int(k)
    return size


def _uses_atlas(path: Path) -> bool:
    """Whether an exported Mobile UNet draws its RGB with the TeethAtlas (a GridSample in the graph)."""
    import onnx

    return any(n.op_type == "GridSample" and not n.name.startswith("mouth/")
               for n in onnx.load(str(path), load_external_data=False).graph.node)


def _shipped_net(atlas: bool):
    """The Mobile UNet as the shipped file runs it (RGB from the TeethAtlas or the conv head)."""
    from training.nets import build_net

    net = build_net("mobile_unet", teeth_atlas=atlas)
    net.heads.use_atlas = atlas
    return net


def _mouth_net(path: Path):
    from training.mouth_attach import mouth_network

    return mouth_network(path)


def run(repeats: int = 30, size: int = 256) -> list[dict]:
    """Measure every architecture; returns one dict per model."""
    from smilecore import registry
    from smilecore.model import SmileModel

    from .photos import scratch_folder

    folder = scratch_folder("smile-bench-models-")
    rows = _export_all(size, folder)
    try:  # also time the shipped file (trained weights, fp16 storage, maybe a smaller inner size)
        shipped = registry.resolve_model(None)
        inner = _inner_size(shipped, size)
        from training.nets import count_macs, count_params

        mouth = _mouth_net(shipped)
        # a file with a mouth network holds the atlas-trained net without its atlas (mouth-attach drops it)
        net = _shipped_net(_uses_atlas(shipped) or mouth is not None)
        dropped = net.heads.atlas if mouth is not None else None
        row = {**rows[0], "label": f"ours: shipped default (net runs at {inner}² inside)", "path": shipped,
               "macs": count_macs(net, inner, skip=dropped),
               "params": count_params(net) - (count_params(dropped) if dropped is not None else 0)}
        if mouth is not None:  # the mouth network inside the same file (python -m training mouth-attach)
            import torch

            from training.mouth_net import PATCH_H, PATCH_W

            row["label"] += " + its mouth network"
            row["params"] += count_params(mouth)
            row["macs"] += count_macs(mouth, inputs=(torch.zeros(1, 5, PATCH_H, PATCH_W),))
        rows.insert(1, row)
    except Exception:
        pass
    crops = np.random.default_rng(0).integers(0, 256, (1, size, size, 3), dtype=np.uint8)
    for r in rows:
        r["mb"] = Path(r["path"]).stat().st_size / 1e6
    for threads in (1, 2):
        models = [SmileModel(r["path"], threads=threads) for r in rows]
        for m in models:  # warm up
            m.run(crops, 1.0)
        times = [[] for _ in models]
        for _ in range(repeats):
            for k, m in enumerate(models):
                t0 = time.perf_counter()
                m.run(crops, 1.0)
                times[k].append((time.perf_counter() - t0) * 1000)
        for r, ts in zip(rows, times):
            r[f"med{threads}"] = statistics.median(ts)
            r[f"p90_{threads}"] = float(np.percentile(ts, 90))
    return rows


def to_markdown(rows: list[dict]) -> str:
    ours = rows[0]
    lines = [
        "| model | params | GFLOPs (2×MACs) at 256² | ONNX file | median / p90 ms, 1 thread | median / p90 ms, 2 threads | ours is faster by (2 threads) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = "—" if r is ours else f"{r['med2'] / ours['med2']:.1f}×"
        lines.append(
            f"| {r['label']} | {r['params'] / 1e6:.2f} M | {2 * r['macs'] / 1e9:.2f} | {r['mb']:.1f} MB | "
            f"{r['med1']:.1f} / {r['p90_1']:.1f} | {r['med2']:.1f} / {r['p90_2']:.1f} | {ratio} |"
        )
    for r in rows[1:]:
        if r["arch"] == ours["arch"]:
            continue
        lines.append(
            f"\nOurs vs {r['label']}: {100 * (1 - ours['params'] / r['params']):.1f} % fewer parameters, "
            f"{100 * (1 - ours['macs'] / r['macs']):.1f} % fewer FLOPs."
        )
    return "\n".join(lines)
