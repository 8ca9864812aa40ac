"""Quality of the shipped model on our own validation split (``python -m benchmarks quality``).

Runs ``training.evaluate`` on the bundled default ONNX file: per strength, the smile
classifier's probability before/after, dlib identity distance input → output, SSIM/L1
against the teacher's targets, the realism two-sample test (``training.realism``: ROC AUC of
a classifier telling the edited faces at λ = 1 and 2, and the unedited ones as the ceiling,
from real smiles of other people; 0.5 = cannot tell; beside it the same test on the face mesh's
landmarks, ``training.realism_shape``, and on other features of the same window, ``training.realism_judges``:
Gabor energies, the pixels, the power spectrum; after it the same features and classifier fitted once on the
train split's 700 faces per side, a judge with more examples: ``training.realism.trained_judge``),
the smile bars again on the realism sample's neutral faces (about twice the faces), the realism test and those judges
on what ``smile`` makes (each face edited on its source photo at the photo's own resolution) and writes (that photo
saved as ``smile`` saves it, read back: ``training.photos``), and negative strengths on smiling faces.  When the model carries a mouth network (``python -m training mouth-attach``), the same
tables follow for the baseline: model 1.3.0, whose smile network paints a mouth drawn by code
(``training/teeth.py``), kept for this row only in ``benchmarks/baseline/`` (it is not bundled).
Needs the training cache (``python -m training prepare`` and ``classifier``, data
from ``../shared/data``); its contact sheets stay in that cache (dataset faces are never
written into the repo).
"""
from __future__ import annotations

from pathlib import Path

#: The drawn-mouth model the benchmark compares the shipped one with.
BASELINE = Path(__file__).resolve().parent / "baseline" / "smile-mobileunet-1.3.0.onnx"


def run() -> int:
    """Evaluate the default model, then the drawn-mouth baseline; prints the Markdown tables; returns the exit status."""
    from smilecore import registry
    from smilecore.model import SmileModel
    from training import evaluate
    from training.config import load_config

    path = registry.resolve_model(None)
    status = evaluate.main(["--model", str(path)])
    if status or "smile.mouth" not in SmileModel(path).meta or not BASELINE.exists():
        return status
    print(f"\nBaseline: {BASELINE.name}, the smile network's own painted (drawn) mouth, no mouth network\n")
    return evaluate.main(["--model", str(BASELINE), "--out", str(load_config(None).cache / "eval-drawn-mouth")])
