"""Put a small graph exported from PyTorch into an exported smile model, and write the derived model's card.

``python -m training mouth-attach`` (the mouth network) and ``python -m training transport`` (the
transported shade) each export one module to ONNX and append it to a model's graph: the module's
inputs and outputs are renamed to the model's own tensors, everything else gets a prefix.
"""
from __future__ import annotations

from pathlib import Path


#: The inputs and output of a part that decides a model's shade (the transport, the crease network).
SHADE_PART_INPUTS = ("face", "strength", "rgb", "mask", "flow", "shade")
SHADE_PART_OUTPUT = "shade_out"


def export_shade_part(module, out: Path, size: int) -> None:
    """Trace ``module`` ((face, strength, rgb, mask, flow, shade) at ``size``² → the shade) to ONNX
    opset 17 at ``out``, inputs and output named as :data:`SHADE_PART_INPUTS` and
    :data:`SHADE_PART_OUTPUT`, the batch dynamic."""
    import torch

    n, s = 2, size
    args = (torch.zeros(n, 3, s, s), torch.ones(n, 1), torch.zeros(n, 3, s, s), torch.zeros(n, 1, s, s),
            torch.zeros(n, 2, s, s), torch.zeros(n, 1, s, s))
    names = list(SHADE_PART_INPUTS)
    with torch.no_grad():
        torch.onnx.export(module, args, str(out), dynamo=False, opset_version=17, input_names=names,
                          output_names=[SHADE_PART_OUTPUT], dynamic_axes={k: {0: "N"} for k in names + [SHADE_PART_OUTPUT]})


def append_part(base, part, shared: dict[str, str], prefix: str) -> None:
    """Append the graph of ``part`` (an ``onnx.ModelProto``) to that of ``base`` (changed in place):
    a tensor named in ``shared`` becomes the base graph's tensor of that name, every other tensor,
    initializer and node gets ``prefix``."""

    def rename(name: str) -> str:
        return name if not name else shared.get(name, prefix + name)

    g = base.graph
    for init in part.graph.initializer:
        init.name = rename(init.name)
        g.initializer.append(init)
    for node in part.graph.node:
        node.input[:] = [rename(i) for i in node.input]
        node.output[:] = [rename(o) for o in node.output]
        node.name = prefix + node.name
        g.node.append(node)


def replace_part(base, part, shared: dict[str, str], prefix: str) -> None:
    """Put the graph of ``part`` in place of the part that :func:`append_part` put into ``base`` with
    ``prefix`` (``base`` changed in place): the old part's nodes and initializers go, the new part's
    nodes take their place in the graph's order (so that what reads the old part's outputs, later
    in the graph, reads the new part's), renamed as :func:`append_part` does. Raises ValueError,
    changing nothing, if ``base`` has no such part."""
    g = base.graph
    at = next((i for i, n in enumerate(g.node) if n.name.startswith(prefix)), None)
    if at is None:
        raise ValueError(f"the graph has no part {prefix!r}")
    before = list(g.node[:at])
    after = [n for n in g.node[at:] if not n.name.startswith(prefix)]
    inits = [i for i in g.initializer if not i.name.startswith(prefix)]
    tmp = type(base)()
    tmp.graph.name = g.name
    append_part(tmp, part, shared, prefix)
    del g.node[:]
    g.node.extend(before + list(tmp.graph.node) + after)
    del g.initializer[:]
    g.initializer.extend(inits + list(tmp.graph.initializer))


def remove_part(model, prefix: str, renames: dict[str, str]) -> None:
    """Take out of ``model``'s graph (in place) a part that :func:`append_part` put there with
    ``prefix``: its nodes and initializers, then rename tensors by ``renames`` (e.g. the base's own
    output the part had taken over gets its name back). Raises ValueError, changing nothing, if
    the rest of the graph reads a tensor of the part."""
    g = model.graph
    gone = [n for n in g.node if n.name.startswith(prefix)]
    made = {o for n in gone for o in n.output} | {i.name for i in g.initializer if i.name.startswith(prefix)}
    kept = [n for n in g.node if not n.name.startswith(prefix)]
    read = {i for n in kept for i in n.input} | {o.name for o in g.output if o.name not in renames.values()}
    if not gone or read & made:
        raise ValueError(f"the graph has no part {prefix!r}" if not gone else
                         f"the rest of the graph reads {sorted(read & made)[:3]} of the part {prefix!r}")
    del g.node[:]
    g.node.extend(kept)
    inits = [i for i in g.initializer if not i.name.startswith(prefix)]
    del g.initializer[:]
    g.initializer.extend(inits)
    rename_in_graph(model, renames)


def rename_in_graph(model, renames: dict[str, str]) -> None:
    """Rename tensors produced and read by the nodes of ``model``'s graph (changed in place)."""
    for node in model.graph.node:
        node.output[:] = [renames.get(o, o) for o in node.output]
        node.input[:] = [renames.get(i, i) for i in node.input]


def derived_card(src: Path, out: Path, version: str, intro: list[str], digest: str, nbytes: int, metrics: list[dict],
                 failures: str = "") -> str:
    """The card of model ``version`` at ``out``, made from the model at ``src``: ``intro`` (Markdown
    lines: what was added), the file's size and checksum, its ``failures`` (Markdown), its evaluation
    (``metrics``: metrics.json of ``python -m training evaluate``), then the source model's card less
    its evaluations (they stay in the source's own card: the repository's history of
    smilecore/models/MODEL_CARD.md holds every bundled model's)."""
    from .export import source_card
    from .shade import evaluation_sections, without_evaluations

    base_card = source_card(src)
    lines = [f"# {out.stem.rsplit('-', 1)[0]} {version}", "", *intro, "",
             f"- file `{out.name}`, {nbytes} bytes, sha256 `{digest}`"]
    if failures.strip():
        lines += ["", "## What it gets wrong", "", failures.strip()]
    lines += [""] + evaluation_sections(metrics)
    base = base_card.read_text()
    body = without_evaluations(base.split("\n", 1)[1] if base.startswith("# ") else base)
    lines += ["## The source model (its card)", "",
              "(Its evaluations and its sources' are in their own cards: `git log -p -- smilecore/models/MODEL_CARD.md`.)", ""]
    return "\n".join(lines) + body.replace("\n## ", "\n### ")
