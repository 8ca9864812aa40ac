"""The evaluation's teeth metric and its Markdown table (skipped without torch)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")

from training.evaluate import add_realism, markdown_table  # noqa: E402
from training.donors import teeth_fraction, tooth_edges  # noqa: E402


def _mouth(inner_rgb: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A 128² skin-coloured crop with pink outer lips (48-59) and an inner-lip area (60-67) of ``inner_rgb``."""
    img = np.full((128, 128, 3), (200, 160, 140), np.uint8)
    t = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    outer = np.stack([64 - 30 * np.cos(t), 90 + 14 * np.sin(t)], 1)
    t8 = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    inner = np.stack([64 - 22 * np.cos(t8), 90 + 8 * np.sin(t8)], 1)
    cv2.fillPoly(img, [np.round(outer).astype(np.int32)], (170, 90, 90))
    cv2.fillPoly(img, [np.round(inner).astype(np.int32)], inner_rgb)
    return img, np.concatenate([outer, inner]).astype(np.float32)


def test_teeth_fraction_tells_teeth_from_lips_and_cavity():
    white, lips = _mouth((235, 232, 225))
    assert teeth_fraction(white, lips) > 0.8
    pink, lips = _mouth((175, 95, 95))  # the lips pulled wide: no teeth
    assert teeth_fraction(pink, lips) == 0.0
    dark, lips = _mouth((40, 15, 15))  # an open, dark mouth
    assert teeth_fraction(dark, lips) == 0.0
    tinted, lips = _mouth((250, 120, 250))  # bright but strongly coloured: not teeth
    assert teeth_fraction(tinted, lips) == 0.0


def test_markdown_table_reports_teeth_only_where_the_mouth_opened():
    row = {"p_before": 0.05, "p_after": 0.6, "moved_right_way": 1.0, "identity_mean": 0.3, "identity_max": 0.4,
           "ssim_teacher": 0.97, "l1_teacher": 0.01}
    table = markdown_table({"1": {**row, "opened": 0, "teeth_out": float("nan"), "teeth_teacher": float("nan")},
                            "2": {**row, "opened": 5, "teeth_out": 0.41, "teeth_teacher": 0.63, "smiling_after": 0.934,
                                  "edges_out": 12.34, "edges_teacher": 20.0, "detail_kept": 0.987, "realism_auc": 0.9876,
                                  "read_p10": 0.734, "read_median": 1.456, "read_p90": 2.049, "read_weak": 0.0625}})
    lines = table.splitlines()
    assert lines[0].count("|") == lines[2].count("|") == lines[3].count("|") == 14
    assert lines[2].endswith("| – | – | – | – | – |")
    assert lines[3].endswith("| 0.41 (0.63) | 12.3 (20.0) | 0.99 | 0.73 / 1.46 / 2.05; 6% | 0.988 |")
    # the share of non-smilers rated smiling after the edit (issue 15: ≥ 90 % at λ = 2); "–" in older metrics
    assert "| 1.00 | 0.93 | 0.300 (max" in lines[3] and "| 1.00 | – | 0.300 (max" in lines[2]


def test_add_realism_puts_the_ceiling_at_lambda_zero():
    per = {"-1": {}, "0": {}, "1": {}, "2": {}, "3": {}}
    add_realism(per, {"ceiling": {"auc": 0.9, "sd": 0.01},
                      "per_lambda": {"1": {"auc": 0.8, "sd": 0.02}, "2": {"auc": 0.7, "sd": 0.03}}})
    assert per["0"]["realism_auc"] == 0.9 and per["1"]["realism_auc"] == 0.8 and per["2"]["realism_sd"] == 0.03
    assert "realism_auc" not in per["-1"] and "realism_auc" not in per["3"]


def test_tooth_edges_tell_separate_teeth_from_a_band():
    band, lips = _mouth((235, 232, 225))
    teeth = band.copy()
    inner = np.zeros(band.shape[:2], np.uint8)
    cv2.fillPoly(inner, [np.round(lips[12:20]).astype(np.int32)], 1)
    gaps = (inner > 0) & (np.arange(128)[None, :] % 6 == 0)  # a dark gap every 6 px
    teeth[gaps] = (120, 110, 105)
    assert tooth_edges(band, lips) < 1.0
    assert tooth_edges(teeth, lips) > 15.0
    assert tooth_edges(np.zeros_like(band), np.zeros((20, 2), np.float32)) == 0.0


def test_the_engine_editor_composites_as_a_user_gets_it(astronaut):
    """``onnx_editor`` (default ``engine``) edits a crop as the engine edits a photo: nothing outside
    the face's own region changes, the mouth does, and λ = 0 is the crop itself."""
    import smilecore
    from smilecore import facemesh
    from smilecore.align import CROP_SIZE, align_face, extract_crop
    from smilecore.registry import resolve_model
    from training.evaluate import onnx_editor

    face = smilecore.detect_faces(astronaut)[0]
    crop = extract_crop(astronaut, align_face(face.landmarks, CROP_SIZE))[None]
    edit, size = onnx_editor(resolve_model(None))
    assert size == CROP_SIZE
    assert np.array_equal(edit(crop, 0.0), crop)
    out = edit(crop, 2.0)
    assert out.shape == crop.shape and out.dtype == np.uint8
    from smilecore.model import SmileModel

    flow = SmileModel(resolve_model(None)).run(crop, 2.0).flow[0]
    area = facemesh.edit_region(facemesh.network().read(crop)[0][0], CROP_SIZE, flow)
    outside = area == 0
    assert outside.mean() > 0.2  # hair, background, collar
    assert np.array_equal(out[0][outside], crop[0][outside])
    diff = np.abs(out[0].astype(int) - crop[0].astype(int)).max(axis=-1)
    assert diff[150:210, 90:170].max() > 20  # the mouth moved
    net, _ = onnx_editor(resolve_model(None), "network")
    assert not np.array_equal(net(crop, 2.0), out)  # the contract's formula alone is another picture
    with pytest.raises(ValueError, match="composite"):
        onnx_editor(resolve_model(None), "paint")


def test_reading_puts_edits_on_the_engines_scale_and_counts_the_weak_ones():
    from smilecore.strength import NEUTRAL_SPREAD
    from training.smile_level import WEAK, reading

    # levels → own strengths 0 (a neutral-looking edit), 0.25, 0.6, 1, 1.5 (level = 0.4 + 0.6 · strength)
    own = np.array([0.0, 0.25, 0.6, 1.0, 1.5])
    levels = NEUTRAL_SPREAD + (1.0 - NEUTRAL_SPREAD) * own
    levels[0] = -0.3  # below the neutral spread: reads 0, not a negative strength
    r = reading(levels, 1.0)
    assert r["read_median"] == pytest.approx(0.6) and r["read_p10"] == pytest.approx(0.1)
    assert r["read_p90"] == pytest.approx(1.3)
    assert r["read_weak"] == pytest.approx(2 / 5)  # 0 and 0.25 read under half of 1; 0.6 does not
    # strength 3 asks for the saturated ~2.37: half of it is ~1.18, so 1.0 is weak there, 1.5 is not
    assert reading(levels, 3.0)["read_weak"] == pytest.approx(4 / 5)
    assert WEAK == 0.5
    with pytest.raises(ValueError, match="above 0"):
        reading(levels, 0.0)
    with pytest.raises(ValueError, match="no edits"):
        reading(np.array([]), 1.0)


def test_the_closed_editor_leaves_out_the_painted_mouth_and_nothing_else(astronaut, monkeypatch):
    """``onnx_editor(..., "closed")`` is the engine's composite without the painted mouth: the same
    warp and shade, and no paint. (The astronaut shows her own teeth, which the engine keeps and never
    paints over, so here the teeth rule is turned off to give the painted mouth somewhere to be.)"""
    import smilecore
    from smilecore import facemesh
    from smilecore.align import CROP_SIZE, align_face, extract_crop
    from smilecore.model import SmileModel
    from smilecore.registry import resolve_model
    from smilecore.strength import face_strengths
    from training.evaluate import onnx_editor

    monkeypatch.setattr(facemesh, "painted_mask", lambda mask, teeth: np.asarray(mask, np.float32))
    face = smilecore.detect_faces(astronaut)[0]
    crop = extract_crop(astronaut, align_face(face.landmarks, CROP_SIZE))[None]
    lams = face_strengths(2.0, facemesh.network().read(crop).level)
    mask = SmileModel(resolve_model(None)).run(crop, lams).mask[0].reshape(CROP_SIZE, CROP_SIZE)
    painted, opaque = mask > 0, mask > 0.5
    assert opaque.sum() > 100  # the network paints a mouth here
    engine, _ = onnx_editor(resolve_model(None))
    closed, _ = onnx_editor(resolve_model(None), "closed")
    a, b = engine(crop, 2.0)[0].astype(int), closed(crop, 2.0)[0].astype(int)
    differs = np.abs(a - b).max(axis=-1) > 0
    assert not differs[~painted].any()  # outside the painted mouth: the same picture
    assert differs[opaque].mean() > 0.9  # where it is mostly paint: the warped lips instead
    assert np.array_equal(closed(crop, 0.0), crop)


def test_smile_bars_count_the_non_smilers_rated_happier_and_smiling():
    """The smile bars on the realism sample: only faces scored under 0.5 before count, "happier" is any
    rise, "smiling" a score above 0.5 after."""
    from training.evaluate import smile_bars

    # a face's "smile probability" is its mean brightness / 255; the "edit" brightens by 40 · λ
    crops = np.stack([np.full((32, 32, 3), v, np.uint8) for v in (20, 100, 110, 140, 200)])

    def score(x):
        return x.reshape(len(x), -1).mean(1) / 255.0

    def edit(x, lam):
        return np.clip(x.astype(int) + int(40 * lam), 0, 255).astype(np.uint8)

    bars = smile_bars(edit, 32, crops, np.array([0, 1, 2, 3, 4]), score, (1.0, -1.0))
    one, minus = bars["per_lambda"]["1"], bars["per_lambda"]["-1"]
    assert bars["faces"] == 5 and one["non_smilers"] == 3  # 200 / 255 already smiles, 140 is 0.55
    assert one["happier"] == 1.0 and one["rated_smiling"] == 2 / 3  # 100 + 40 and 110 + 40 pass 127.5; 20 + 40 not
    assert minus["happier"] == 0.0 and minus["rated_smiling"] == 0.0
    assert "| +1 | 3 | 100.0% | 66.7% |" in bars["markdown"]
    assert "realism sample's 5 neutral faces" in bars["markdown"]
    every = smile_bars(edit, 32, crops, np.array([0, 1]), score, (1.0,), what="every one of the split's")
    assert every["markdown"].startswith("| λ (every one of the split's 2 neutral faces) |")
    assert every["per_lambda"]["1"] == {"non_smilers": 2, "rated_smiling": 0.5, "happier": 1.0}
