"""The realism test's results (:func:`training.realism.evaluate_realism`) as a Markdown table."""
from __future__ import annotations

from typing import Any

#: The judges of other kinds (:mod:`training.realism_judges`): the key suffix of their AUCs and their column.
OTHER_JUDGES = (("_gabor", "Gabor judge"), ("_pixels", "pixel judge"), ("_spectrum", "spectrum judge"))


def markdown(result: dict[str, Any], edited: str = "neutral faces") -> str:
    """The realism results as a Markdown table (one row per condition; per-source AUCs of the grey test);
    ``edited`` names what was edited (neutral faces, or real smiles for the test on smiling faces,
    whose unedited row is a floor rather than a ceiling)."""
    strata = ", ".join(f"{k} {v}" for k, v in result["strata"].items())
    colour = "auc_colour" in result["ceiling"]
    mirror = "auc_mirror" in result["ceiling"]
    cnn = "auc_cnn" in result["ceiling"]
    shape = "auc_shape" in result["ceiling"]
    others = [(k, name) for k, name in OTHER_JUDGES if f"auc{k}" in result["ceiling"]]
    sources = sorted(result["ceiling"].get("by_source", {}))
    lines = [f"Realism: ROC AUC of a logistic regression on grey HOG + LBP of the lower face telling {result['edited']} "
             f"{edited} from {result['real']} real smiles of other people ({result['folds']} person-disjoint folds "
             f"× {result['repeats']}; 0.5 = cannot tell; faces per stratum, the same on both sides: {strata})"
             + ("; the Gabor, pixel and spectrum judges are the same regression on other features of the same window "
                "(training.realism_judges)" if others else "") + ":", "",
             f"| {edited.rstrip(',')} shown as | realism AUC | ± sd (folds) |" + "".join(f" {s} only |" for s in sources)
             + (" with colour features |" if colour else "") + (" mirror-pooled |" if mirror else "")
             + (" CNN judge |" if cnn else "")
             + (" shape judge (face mesh) |" if shape else "") + "".join(f" {name} |" for _, name in others),
             "|---|---:|---:|" + "---:|" * len(sources) + ("---:|" if colour else "") + ("---:|" if mirror else "")
             + ("---:|" if cnn else "")
             + ("---:|" if shape else "") + "---:|" * len(others)]

    def row(name: str, m: dict[str, Any]) -> str:
        by = m.get("by_source", {})
        cells = "".join(f" {by[s]:.3f} |" if s in by else " – |" for s in sources)
        extra = f" {m['auc_colour']:.3f} |" if colour and "auc_colour" in m else (" – |" if colour else "")
        extra += f" {m['auc_mirror']:.3f} |" if mirror and "auc_mirror" in m else (" – |" if mirror else "")
        extra += f" {m['auc_cnn']:.3f} |" if cnn and "auc_cnn" in m else (" – |" if cnn else "")
        extra += f" {m['auc_shape']:.3f} |" if shape and "auc_shape" in m else (" – |" if shape else "")
        extra += "".join(f" {m['auc' + k]:.3f} |" if f"auc{k}" in m else " – |" for k, _ in others)
        return f"| {name} | {m['auc']:.3f} | {m['sd']:.3f} |{cells}{extra}"

    lines.append(row("unedited (ceiling)" if edited == "neutral faces" else "unedited", result["ceiling"]))
    for lam, m in result["per_lambda"].items():
        lines.append(row(f"λ = {float(lam):+g}", m))
    lines.append(row(f"floor: real smiles vs real smiles ({result['floor_size']} each; sd over "
                     f"{result['floor'].get('splits', 1)} random halvings)", result["floor"]))
    if "context" in result:
        c = result["context"]
        lines.append(row(f"context: unedited, every face painted grey ({c['window_share']:.0%} of the window left, "
                         "which no edit changes)", c))
    return "\n".join(lines)
