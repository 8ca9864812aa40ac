"""Quality of the shipped model on our own validation split (``python -m benchmarks quality``).

Runs ``training.evaluate`` on the bundled default ONNX file: per strength, the smile
classifier's probability before/after, dlib identity distance input → output, SSIM/L1
against the teacher's targets, the realism two-sample test (``training.realism``: ROC AUC of
a classifier telling the edited faces at λ = 1 and 2, and the unedited ones as the ceiling,
from real smiles of other people; 0.5 = cannot tell), and negative strengths on smiling
faces.  Needs the training cache (``python -m training prepare`` and ``classifier``, data
from ``../shared/data``); its contact sheets stay in that cache (dataset faces are never
written into the repo).
"""
from __future__ import annotations


def run() -> int:
    """Evaluate the default model; prints the Markdown tables; returns the exit status."""
    from smilecore import registry
    from training import evaluate

    return evaluate.main(["--model", str(registry.resolve_model(None))])
