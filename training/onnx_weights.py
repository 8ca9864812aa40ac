"""The smile network's weights out of an exported model file, and tuned weights back into it.

An exported model (``training.export``) holds the Mobile UNet with every batch norm folded into
the convolution before it, most weights stored as float16 behind a ``Cast``, and its
initializers mostly anonymous (``onnx::Conv_1068_fp16``). The node names keep the module path
(``/net/enc.0/enc.0.0/enc.0.0.0/enc.0.0.0.0/Conv``), so each weight can be traced back to its
module. :func:`net_from_onnx` rebuilds a :class:`~training.nets.MobileUNet` from a file: each
folded convolution goes into its ``Conv2d``, the folded bias into the batch norm after it, which
starts as the identity (mean 0, variance 1 − ε, scale 1). :func:`write_net` folds a tuned
network the same way and writes its weights over the file's, in their own names and types:
the graph, its other parts (shade, mouth network) and its metadata stay as they were.

This is what ``python -m training tune`` needs: the training runs behind a shipped model are
not kept, its file is.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .nets import MobileUNet, MobileUNetConfig

#: Prefix of the network's named initializers in an exported file (contract wrapper, resolution adapter).
NAMED = "net.net."


@dataclass
class WeightMap:
    """Where each of the file's smile-network initializers comes from in the torch network."""

    #: initializer name -> (module path, "weight" | "bias") of a folded Conv2d (bias: the BN after it)
    folded: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: initializer name -> state-dict key (with "T" when stored transposed)
    named: dict[str, tuple[str, bool]] = field(default_factory=dict)


def _resolve(net: nn.Module, scope: list[str]) -> str | None:
    """The module path named by an exporter scope such as ``['enc.0', 'enc.0.0', 'enc.0.0.0']``."""
    path, prev = [], None
    cur = net
    for comp in scope:
        rel = comp[len(prev) + 1:] if prev is not None and comp.startswith(prev + ".") else comp
        try:
            cur = cur.get_submodule(rel)
        except AttributeError:
            return None
        path.append(rel)
        prev = comp
    return ".".join(path)


def _sources(graph) -> dict[str, str]:
    """Cast outputs fed by an initializer -> that initializer's name (float16 storage)."""
    inits = {i.name for i in graph.initializer}
    return {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Cast" and n.input[0] in inits}


def _bn_after(net: nn.Module, conv_path: str) -> str:
    """The BatchNorm2d right after the Conv2d at ``conv_path`` in its Sequential (ConvBNAct)."""
    parent, _, idx = conv_path.rpartition(".")
    bn = f"{parent}.{int(idx) + 1}"
    if not isinstance(net.get_submodule(bn), nn.BatchNorm2d):
        raise ValueError(f"no batch norm after {conv_path}")
    return bn


def net_from_onnx(path, config: MobileUNetConfig | None = None) -> tuple[MobileUNet, WeightMap]:
    """The :class:`MobileUNet` inside the exported model at ``path`` (eval mode, batch norms as the
    identity plus the folded bias) and the map of its weights. Heads the file dropped (the RGB
    head and the teeth atlas of a model with a mouth network) keep their fresh weights; every
    weight of the encoder, decoder, FiLM layers and the mask and flow heads must be found.
    ``path`` may also be the file already loaded (an ``onnx.ModelProto``)."""
    from onnx import numpy_helper

    model = _load(path)
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    casts = _sources(g)
    net = MobileUNet(config or MobileUNetConfig(teeth_atlas=True, film_hidden=_film_hidden(g, inits, casts))).eval()
    state = net.state_dict()
    new: dict[str, torch.Tensor] = {}
    wmap = WeightMap()

    def array(name: str) -> np.ndarray:
        return numpy_helper.to_array(inits[casts.get(name, name)]).astype(np.float32)

    for name in inits:
        if name.startswith(NAMED) and name[len(NAMED):] in state:
            new[name[len(NAMED):]] = torch.from_numpy(array(name))
            wmap.named[name] = (name[len(NAMED):], False)
    for node in g.node:
        if node.op_type not in ("Conv", "Gemm") or not node.name.startswith("/net/"):
            continue  # not the smile network's (e.g. the mouth network's, under "mouth/")
        scope = [c for c in node.name.split("/")[1:-1]]
        while scope and scope[0] == "net":
            scope = scope[1:]
        weights = [i for i in node.input[1:] if casts.get(i, i) in inits]
        if not weights or all(casts.get(i, i) in wmap.named for i in weights):
            continue
        mod_path = _resolve(net, scope)
        if mod_path is None:
            raise ValueError(f"cannot place the weights of node {node.name} in the network")
        mod = net.get_submodule(mod_path)
        if node.op_type == "Conv":
            if not isinstance(mod, nn.Conv2d):
                raise ValueError(f"{node.name}: {mod_path} is not a convolution")
            w = array(node.input[1])
            new[mod_path + ".weight"] = torch.from_numpy(w)
            wmap.folded[casts.get(node.input[1], node.input[1])] = (mod_path, "weight")
            if len(node.input) > 2:
                b = torch.from_numpy(array(node.input[2]))
                if mod.bias is not None:
                    new[mod_path + ".bias"] = b
                    wmap.named[casts.get(node.input[2], node.input[2])] = (mod_path + ".bias", False)
                else:
                    bn = _bn_after(net, mod_path)
                    eps = net.get_submodule(bn).eps
                    new.update({bn + ".weight": torch.ones_like(b), bn + ".bias": b, bn + ".running_mean": torch.zeros_like(b),
                                bn + ".running_var": torch.full_like(b, 1.0 - eps)})
                    wmap.folded[casts.get(node.input[2], node.input[2])] = (mod_path, "bias")
        else:  # Gemm: a Linear of a FiLM
            if not isinstance(mod, nn.Linear):
                raise ValueError(f"{node.name}: {mod_path} is not a linear layer")
            trans = next((a.i for a in node.attribute if a.name == "transB"), 0) == 1
            for src, key in zip(node.input[1:3], ("weight", "bias")):
                a = array(src)
                if key == "weight" and not trans:
                    a = a.T
                new[f"{mod_path}.{key}"] = torch.from_numpy(np.ascontiguousarray(a))
                wmap.named[casts.get(src, src)] = (f"{mod_path}.{key}", key == "weight" and not trans)
    needed = [k for k in state if not k.startswith(("heads.rgb", "heads.atlas")) and not k.endswith("num_batches_tracked")]
    missing = [k for k in needed if k not in new]
    if missing:
        raise ValueError(f"{path}: no weights found for {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    for k, v in new.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise ValueError(f"{path}: {k} has shape {tuple(v.shape)} in the file, {tuple(state[k].shape)} in the network")
    net.load_state_dict(new, strict=False)
    return net, wmap


def _film_hidden(graph, inits: dict, casts: dict[str, str]) -> int:
    """Hidden units of the file's FiLM MLPs (32, or more after ``training.film_above``): the
    output size of the bottleneck FiLM's first linear layer."""
    from onnx import numpy_helper

    for node in graph.node:
        if node.op_type == "Gemm" and node.name.startswith("/net/") and "bottleneck_film" in node.name and "mlp.0" in node.name:
            w = numpy_helper.to_array(inits[casts.get(node.input[1], node.input[1])])
            trans = next((a.i for a in node.attribute if a.name == "transB"), 0) == 1
            return int(w.shape[0] if trans else w.shape[1])
    return MobileUNetConfig.film_hidden


def folded(net: nn.Module, conv_path: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of the Conv2d at ``conv_path`` with the batch norm after it folded in."""
    conv = net.get_submodule(conv_path)
    bn = net.get_submodule(_bn_after(net, conv_path))
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return conv.weight * scale[:, None, None, None], bn.bias - bn.running_mean * scale


def _load(path):
    """An ONNX model: loaded from ``path``, or ``path`` itself when it is one already."""
    import onnx

    return path if isinstance(path, onnx.ModelProto) else onnx.load(str(path))


def write_net(net: nn.Module, wmap: WeightMap, src: str | Path, out: str | Path) -> None:
    """Write ``src`` to ``out`` with the smile network's weights taken from ``net`` (in the
    initializers' own names and types: float16 ones stay float16)."""
    import onnx

    model = onnx.load(str(src))
    put_net(net, wmap, model, src)
    onnx.checker.check_model(model)
    onnx.save(model, str(out))


@torch.no_grad()
def put_net(net: nn.Module, wmap: WeightMap, model, name: str | Path = "the model") -> None:
    """Replace the smile network's weights in ``model`` (an ``onnx.ModelProto``, changed in place)
    with ``net``'s; ``ValueError`` if ``model`` (called ``name`` in the message) is another network."""
    from onnx import numpy_helper

    names = {i.name for i in model.graph.initializer}
    missing = [n for n in list(wmap.folded) + list(wmap.named) if n not in names]
    if missing:
        raise ValueError(f"{name} is not the network these weights came from (no {', '.join(missing[:3])})")
    state = net.state_dict()
    for init in model.graph.initializer:
        if init.name in wmap.folded:
            path, kind = wmap.folded[init.name]
            w, b = folded(net, path)
            value = w if kind == "weight" else b
        elif init.name in wmap.named:
            key, transposed = wmap.named[init.name]
            value = state[key].T if transposed else state[key]
        else:
            continue
        dtype = numpy_helper.to_array(init).dtype
        init.CopyFrom(numpy_helper.from_array(value.detach().cpu().numpy().astype(dtype), init.name))
