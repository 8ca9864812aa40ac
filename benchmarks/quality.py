"""Quality of the shipped model on our own validation split (``python -m benchmarks quality``).

Runs ``training.evaluate`` on the bundled default ONNX file: per strength, the smile
classifier's probability before/after, dlib identity distance input → output, SSIM/L1
against the teacher's targets, the realism two-sample test (``training.realism``: ROC AUC of
a classifier telling the edited faces at λ = 1 and 2, and the unedited ones as the ceiling,
from real smiles of other people; 0.5 = cannot tell), and negative strengths on smiling
faces.  When the model carries a mouth network (``python -m training mouth-attach``), the same
tables follow for the baseline: the same model with the smile network's own painted mouth.
Needs the training cache (``python -m training prepare`` and ``classifier``, data
from ``../shared/data``); its contact sheets stay in that cache (dataset faces are never
written into the repo).
"""
from __future__ import annotations


def run() -> int:
    """Evaluate the default model, then its drawn-mouth baseline; prints the Markdown tables; returns the exit status."""
    import tempfile
    from pathlib import Path

    from smilecore import registry
    from smilecore.model import SmileModel
    from training import evaluate
    from training.config import load_config
    from training.mouth_attach import without_mouth

    path = registry.resolve_model(None)
    status = evaluate.main(["--model", str(path)])
    if status or "smile.mouth" not in SmileModel(path).meta:
        return status
    print("\nBaseline: the same model with the smile network's own painted mouth (no mouth network)\n")
    with tempfile.TemporaryDirectory() as tmp:
        drawn = Path(tmp) / f"{path.stem}-drawn-mouth.onnx"
        without_mouth(path, drawn)
        return evaluate.main(["--model", str(drawn), "--out", str(load_config(None).cache / "eval-drawn-mouth")])
