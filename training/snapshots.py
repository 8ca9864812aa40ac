"""``python -m training bundle`` / ``restore``: a ``tune`` run's snapshots back from a lent GPU.

A lent machine gives back at most 8 files of 16 MiB. On it (``tools/gpu-tune.sh``)::

    python3 -m training bundle CACHE/tune/NAME $OUT/NAME --blocks 8 --max-mb 15

writes the run's snapshots as at most ``--blocks`` block means (consecutive snapshots averaged,
float16: what ``tune --export --average`` would have averaged anyway) in files of at most
``--max-mb`` each. Here::

    python -m training restore NAME-*.pt --run CACHE/tune/NAME --model MODEL.onnx

writes them back as ``step-NNNNNN.pt`` snapshots (each block mean under its last step; the smile
network's weights from ``MODEL`` where the run did not tune them), for ``python -m training tune
--name NAME --export OUT --step K`` or ``--average FROM``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def _mean(states: list[dict]) -> dict:
    return {k: (sum(s[k].double() for s in states) / len(states)).to(torch.float16) if v.is_floating_point() else v
            for k, v in states[-1].items()}


def bundle(run: Path, out: str, blocks: int, max_mb: float) -> list[Path]:
    """Write ``run``'s snapshots as block means to ``out-K.pt`` files; returns them."""
    steps = sorted(int(p.stem.split("-")[1]) for p in run.glob("step-*.pt"))
    if not steps:
        raise SystemExit(f"error: no snapshots in {run}")
    cks = {k: torch.load(run / f"step-{k:06d}.pt", map_location="cpu", weights_only=False) for k in steps}
    size = -(-len(steps) // blocks)
    parts = cks[steps[-1]]["parts"]
    keys = [k for k in ("mouth", "net") if k in parts]
    head = {k: cks[steps[-1]][k] for k in ("model", "model_sha256", "parts")}
    files, current, nbytes, n = [], {}, 0, 0
    for b in range(0, len(steps), size):
        group = steps[b : b + size]
        entry = {key: _mean([cks[k][key] for k in group]) for key in keys}
        entry["shade_delta"] = sum(cks[k]["shade_delta"] for k in group) / len(group)
        entry["steps"] = group
        mb = sum(v.numel() * v.element_size() for key in keys for v in entry[key].values()) / 2**20
        if current and nbytes + mb > max_mb:
            files.append(_write(out, n, head, current))
            current, nbytes, n = {}, 0, n + 1
        current[group[-1]] = entry
        nbytes += mb
    files.append(_write(out, n, head, current))
    return files


def _write(out: str, n: int, head: dict, entries: dict) -> Path:
    path = Path(f"{out}-{n}.pt")
    torch.save({**head, "blocks": entries}, path)
    return path


def restore(files: list[Path], run: Path, model: Path) -> list[int]:
    """Write the bundles' block means as ``run/step-NNNNNN.pt``; returns their steps."""
    from smilecore.digest import file_sha256

    from .tune import MergedModel

    run.mkdir(parents=True, exist_ok=True)
    digest = file_sha256(model)
    net = None
    written = []
    for f in files:
        b = torch.load(f, map_location="cpu", weights_only=False)
        if b["model_sha256"] != digest:
            raise SystemExit(f"error: {model} is not the model {f} was tuned from ({b['model']})")
        for step, e in sorted(b["blocks"].items()):
            ck = {"model": str(model), "model_sha256": b["model_sha256"], "parts": b["parts"], "step": step,
                  "shade_delta": e["shade_delta"], "block": e["steps"]}
            for key in ("mouth", "net"):
                if key in e:
                    ck[key] = {k: v.float() if v.is_floating_point() else v for k, v in e[key].items()}
            if "net" not in ck:
                if net is None:
                    net = MergedModel(model).net.state_dict()
                ck["net"] = net
            torch.save(ck, run / f"step-{step:06d}.pt")
            written.append(step)
    return written


def main_bundle(argv: list[str] | None = None) -> int:
    """``python -m training bundle RUN OUT [--blocks N] [--max-mb M]``."""
    ap = argparse.ArgumentParser(prog="python -m training bundle", description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="the run's folder (cache/tune/NAME)")
    ap.add_argument("out", help="files OUT-0.pt, OUT-1.pt, ... are written")
    ap.add_argument("--blocks", type=int, default=8, help="at most this many block means (default 8)")
    ap.add_argument("--max-mb", type=float, default=15.0, help="at most this many MiB of weights a file (default 15)")
    args = ap.parse_args(argv)
    if args.blocks < 1:
        raise SystemExit("error: --blocks must be 1 or more")
    print(" ".join(str(p) for p in bundle(args.run, args.out, args.blocks, args.max_mb)))
    return 0


def main_restore(argv: list[str] | None = None) -> int:
    """``python -m training restore FILES... --run DIR --model MODEL.onnx``."""
    ap = argparse.ArgumentParser(prog="python -m training restore", description="write bundled snapshots back into a run")
    ap.add_argument("files", type=Path, nargs="+", help="OUT-K.pt files written by `bundle`")
    ap.add_argument("--run", type=Path, required=True, help="the run's folder to write step-NNNNNN.pt into")
    ap.add_argument("--model", type=Path, required=True, help="the model the run was tuned from")
    args = ap.parse_args(argv)
    for f in [*args.files, args.model]:
        if not f.is_file():
            raise SystemExit(f"error: {f}: not found")
    print(json.dumps(restore(args.files, args.run, args.model)))
    return 0
