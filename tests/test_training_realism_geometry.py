"""The mouth's geometry against real smiles (training.realism_geometry): dlib's 68 landmarks on
the public-domain astronaut, neutral and smiling (skipped without torch)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")

import smilecore  # noqa: E402
from smilecore.align import align_face, extract_crop  # noqa: E402
from training.geometry import METRICS  # noqa: E402
from training.realism_geometry import geometry_markdown, measure, mouth_geometry  # noqa: E402


def _crop(photo: np.ndarray) -> np.ndarray:
    return extract_crop(photo, align_face(smilecore.detect_faces(photo)[0].landmarks, 256))


@pytest.fixture(scope="module")
def crops(astronaut, smiling) -> np.ndarray:
    return np.stack([_crop(astronaut), _crop(smiling)])


def _widen(crops: np.ndarray, factor: float) -> np.ndarray:
    """Each crop stretched sideways about its centre (every width times ``factor``)."""
    s = crops.shape[1]
    m = np.array([[factor, 0.0, (1 - factor) * (s - 1) / 2], [0.0, 1.0, 0.0]])
    return np.stack([cv2.warpAffine(c, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT) for c in crops])


def test_a_smile_measures_wider_more_open_and_lifted_than_the_same_face_neutral(crops):
    neutral, smiling = measure(crops)
    width, opening, corners = (METRICS.index(k) for k in ("width", "opening", "corners_up"))
    assert smiling[width] > neutral[width] + 0.05
    assert smiling[opening] > neutral[opening] + 0.03
    assert smiling[corners] > neutral[corners] + 0.03
    # lengths are over the eye distance: stretching the whole face sideways by 10 % widens the
    # mouth and (less) the eye distance, and leaves the vertical lengths' ratio to it nearly so
    wider = measure(_widen(crops[:1], 1.1))[0]
    assert neutral[width] < wider[width] < 1.1 * neutral[width] + 0.02


def test_geometry_compares_each_strength_with_the_real_smiles(crops):
    index = {"source": np.array(["utkface", "expressions"])}

    def edit(faces: np.ndarray, lam: float) -> np.ndarray:  # λ ≥ 1 shows the real smile; λ 0.5 half-way wider
        return np.repeat(crops[1:], len(faces), 0) if lam >= 1 else _widen(faces, 1.0 + 0.2 * lam)

    got = mouth_geometry(edit, 256, crops, index, np.array([0]), np.array([1]), (0.5, 1.0))
    assert got["edited"] == 1 and got["real_faces"] == 1 and got["metrics"] == list(METRICS)
    assert list(got["real_by_source"]) == ["expressions"]
    real, neutral = np.array(got["real"]["p50"]), np.array(got["unedited"]["p50"])
    assert np.allclose(got["per_lambda"]["1"]["p50"], real)  # the edit is the real smile itself
    assert got["per_lambda"]["1"]["above_real_p90"] == [0.0] * 5 and got["per_lambda"]["1"]["below_real_p10"] == [0.0] * 5
    assert got["per_lambda"]["0.5"]["p50"][0] > neutral[0]
    table = geometry_markdown(got)
    assert "| real smiles |" in table and "| … expressions only |" in table and "| λ = 0.5 |" in table
    assert f"{real[0]:.3f}" in table and "| 1 | 0% | 0% | 0% | 0% | 0% |" in table and "| neutral, unedited |" in table
    with pytest.raises(ValueError):
        mouth_geometry(edit, 256, crops, index, np.array([], int), np.array([1]), (1.0,))
