"""The real-smile geometry (training.geometry) and the teacher using it.

Synthetic landmark sets only (no dataset faces): people whose smiles are a planted mix of a
"smile" displacement and an "opening" displacement, with a known spread.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from synthetic_face import face_without_mouth  # noqa: E402
from training.direction import compute_direction, load_real_smile, person_deltas, save_asset  # noqa: E402
from training.geometry import METRICS, SATURATION, RealSmile, _schedule, fit_real_smile, mouth_metrics  # noqa: E402
from training.landmarks68 import moving_weights  # noqa: E402
from training.teacher import Teacher  # noqa: E402

COL = {m: i for i, m in enumerate(METRICS)}


def _face() -> np.ndarray:
    """A plausible 68-point neutral face in a 256 crop, closed mouth with real lip thickness."""
    lm = face_without_mouth((84, 172))
    # outer lips 48..59 (corner, upper 49-53, corner 54, lower 55-59), inner lips 60..67
    lm[48], lm[54] = [98, 190], [158, 190]
    lm[49:54] = np.stack([np.linspace(106, 150, 5), [183, 180, 181, 180, 183]], 1)
    lm[55:60] = np.stack([np.linspace(150, 106, 5), [197, 200, 201, 200, 197]], 1)
    lm[60], lm[64] = [102, 190], [154, 190]
    lm[61:64] = np.stack([[114, 128, 142], [189, 189, 189]], 1)
    lm[65:68] = np.stack([[142, 128, 114], [190, 190, 190]], 1)
    return lm


def _smile_part() -> np.ndarray:
    d = np.zeros((68, 2))
    d[[48, 60]] = [-7, -7]
    d[[54, 64]] = [7, -7]
    d[49:54, 1] -= 1.0
    d[55:60, 1] += 1.0
    return d


def _open_part() -> np.ndarray:
    """Landmark motion per unit of opening (in IODs): upper inner lip up, lower lip and chin down."""
    iod = 88.0
    d = np.zeros((68, 2))
    d[61:64, 1] = -0.2 * iod
    d[65:68, 1] = 0.8 * iod
    d[55:60, 1] = 0.8 * iod
    d[5:12, 1] = 0.5 * iod
    return d


def _people(n: int = 300, seed: int = 0):
    """Per person: neutral photos and happy photos = neutral + a·smile + o·open (a, o spread)."""
    rng = np.random.default_rng(seed)
    lm, person, label = [], [], []
    for p in range(n):
        face = _face() + rng.normal(0, 1.0, (68, 2))
        a = rng.gamma(4.0, 0.25)  # mean 1, right-skewed like real smiles
        o = max(0.0, rng.normal(0.09, 0.06))
        for _ in range(2):
            lm.append(face + rng.normal(0, 0.3, (68, 2)))
            person.append(f"p{p}")
            label.append(0)
            lm.append(face + a * _smile_part() + o * _open_part() + rng.normal(0, 0.3, (68, 2)))
            person.append(f"p{p}")
            label.append(1)
    return np.array(lm), np.array(person), np.array(label)


@pytest.fixture(scope="module")
def fitted() -> tuple[RealSmile, np.ndarray, np.ndarray]:
    lm, person, label = _people()
    deltas, neutrals, _ = person_deltas(lm, person, label)
    rs = fit_real_smile(deltas, neutrals, lm[label == 1], lm[label == 0], moving_weights())
    return rs, lm[label == 1], lm[label == 0]


def test_mouth_metrics_of_a_known_face():
    m = mouth_metrics(_face())
    assert m.shape == (5,)
    assert m[COL["width"]] == pytest.approx(60 / 88, abs=1e-6)
    assert m[COL["opening"]] == pytest.approx(1 / 88, abs=1e-6)
    assert m[COL["upper_lip"]] == pytest.approx(8 / 88, abs=1e-6)
    assert m[COL["lower_lip"]] == pytest.approx(11 / 88, abs=1e-6)
    assert mouth_metrics(np.stack([_face()] * 3)).shape == (3, 5)


def test_schedule_is_linear_to_two_then_saturates():
    v1, v2 = 1.0, 1.8
    assert _schedule(0.0, v1, v2) == 0.0 and _schedule(1.0, v1, v2) == v1 and _schedule(2.0, v1, v2) == pytest.approx(v2)
    assert _schedule(-1.0, v1, v2) == -v1
    lams = np.linspace(-2, 4, 121)
    vals = np.array([_schedule(x, v1, v2) for x in lams])
    assert np.all(np.diff(vals) > 0)  # monotone
    assert vals[-1] < v2 + SATURATION * (v2 - v1)  # never past the asymptote
    eps = 1e-4
    assert (_schedule(2 + eps, v1, v2) - _schedule(2 - eps, v1, v2)) / (2 * eps) == pytest.approx(v2 - v1, rel=1e-3)


def test_the_teacher_saturates_as_the_engine_does():
    from smilecore.strength import saturated

    for lam in (2.5, 3.0, 4.0):  # the amount at λ is the amount at the smile size the engine asks for
        assert _schedule(lam, 0.3, 0.8) == pytest.approx(0.3 + (float(saturated(lam)) - 1.0) * 0.5)
        assert _schedule(lam, 0.3, 0.8) == pytest.approx(0.8 + SATURATION * 0.5 * (1 - np.exp(-(lam - 2) / SATURATION)))


def test_fit_recovers_the_planted_parts(fitted):
    rs, _, _ = fitted
    beta, planted = rs.open_per_iod.ravel(), _open_part().ravel()
    assert beta @ planted / np.linalg.norm(beta) / np.linalg.norm(planted) > 0.95
    smile = rs.smile.ravel()
    assert smile @ _smile_part().ravel() / np.linalg.norm(smile) / np.linalg.norm(_smile_part()) > 0.95


def test_lambda_one_is_the_median_real_smile_and_two_the_90th_percentile(fitted):
    rs, happy, neutral = fitted
    real = mouth_metrics(happy)
    w = moving_weights()[:, None]
    at = {lam: np.median(mouth_metrics(neutral + w * rs.displacement(lam)), axis=0) for lam in (1.0, 2.0, 4.0)}
    for m in ("width", "opening"):
        assert at[1.0][COL[m]] == pytest.approx(np.median(real[:, COL[m]]), rel=0.05), m
        assert at[2.0][COL[m]] == pytest.approx(np.percentile(real[:, COL[m]], 90), rel=0.06), m
    assert at[2.0][COL["width"]] <= np.percentile(real[:, COL["width"]], 90) * 1.01  # no wider than broad real smiles
    assert at[4.0][COL["width"]] < np.percentile(real[:, COL["width"]], 99.5) * 1.03  # saturates
    assert 0 < rs.s1 < rs.s2 and 0 < rs.o1 < rs.o2


def test_keep_lips_restores_thickness_and_keeps_the_opening():
    rs = RealSmile(smile=np.zeros((68, 2)), open_per_iod=np.zeros((68, 2)), s1=1, s2=2, o1=0.1, o2=0.2,
                   upper_ratio=0.9, lower_ratio=0.95)
    src = _face()
    tgt = src.copy()
    tgt[61:64, 1] -= 8  # upper inner lip pulled up into the upper lip: 8 px -> 0 px thick
    tgt[65:68, 1] += 10  # lower lip down: opening grows
    out = rs.keep_lips(src, tgt)
    assert out[62, 1] - out[51, 1] == pytest.approx(0.9 * 8)
    assert np.all(out[61:64, 1] - out[50:53, 1] >= 0.9 * (src[61:64, 1] - src[50:53, 1]) - 1e-9)
    assert np.array_equal(out[60:68], tgt[60:68])  # the inner lips (the opening) are untouched
    assert np.array_equal(rs.keep_lips(src, src), src)  # nothing to restore


def test_json_round_trip_and_scale(fitted):
    rs = fitted[0]
    back = RealSmile.from_json(json.loads(json.dumps(rs.to_json())), scale=0.5)
    assert np.allclose(back.displacement(2.0), 0.5 * rs.displacement(2.0), atol=1e-3)


def test_compute_direction_carries_the_real_smile(tmp_path):
    lm, person, label = _people(80, seed=3)
    n = len(lm)
    index = {"lm68": lm.astype(np.float32), "person": person, "label": label,
             "source": np.full(n, "expressions"), "split": np.full(n, "train")}
    res = compute_direction(index, ("train",), repeats=5)
    assert isinstance(res["real_smile"], RealSmile)
    save_asset(res, tmp_path / "d.json")
    back = load_real_smile(tmp_path / "d.json")
    assert np.allclose(back.displacement(1.5), res["real_smile"].displacement(1.5), atol=1e-3)


def test_teacher_real_geometry_stays_within_real_smiles():
    """The committed asset: at λ = 4 the linear teacher stretches the mouth far past λ = 2, the real one hardly."""
    face = _face()
    lin, real = Teacher(donors=None, geometry="linear"), Teacher(donors=None, geometry="real")

    def width(t, lam):
        return mouth_metrics(t.target_landmarks(face, lam, 256))[COL["width"]]

    assert width(lin, 4.0) - width(lin, 2.0) > 2.5 * (width(real, 4.0) - width(real, 2.0))
    assert width(real, 2.0) > width(real, 1.0) > width(real, 0.0)
    for lam in (1.0, 2.0, 4.0):  # each lip keeps its thickness (pixels) as real smiles do
        tl = real.target_landmarks(face, lam, 256)
        assert np.all(tl[61:64, 1] - tl[50:53, 1] >= real.real_smile.upper_ratio * (face[61:64, 1] - face[50:53, 1]) - 1e-6)
        assert np.all(tl[[58, 57, 56], 1] - tl[[67, 66, 65], 1]
                      >= real.real_smile.lower_ratio * (face[[58, 57, 56], 1] - face[[67, 66, 65], 1]) - 1e-6)
    assert np.allclose(real.target_landmarks(face, 0.0, 256), face)


def test_teacher_geometry_and_ramp_are_checked():
    with pytest.raises(ValueError, match="geometry"):
        Teacher(donors=None, geometry="cubic")
    with pytest.raises(ValueError, match="open_ramp"):
        Teacher(donors=None, open_ramp=(0.1, 0.05))
    t = Teacher(donors=None, open_ramp=(0.03, 0.06))
    face = _face()
    tl = face.copy()
    tl[65:68, 1] += 0.045 * 60  # newly opened by 0.045 of the mouth width: half-way up a 0.03-0.06 ramp
    assert t.opening(face, tl) == pytest.approx(0.5, abs=0.03)


def test_teacher_editor_returns_the_teachers_targets_in_order():
    from training.teacher_realism import teacher_editor

    rng = np.random.default_rng(0)
    crops = rng.integers(0, 255, (3, 256, 256, 3), dtype=np.uint8)
    faces = np.stack([_face() + rng.normal(0, 0.5, (68, 2)) for _ in range(3)])
    t = Teacher(donors=None, geometry="real")
    edit = teacher_editor(t, faces)
    assert np.array_equal(edit(crops, 0.0), crops)
    out = edit(crops, 2.0)
    assert out.shape == crops.shape and out.dtype == np.uint8
    for k in range(3):
        assert np.array_equal(out[k], t.synthesize(crops[k], faces[k], 2.0).target)
    with pytest.raises(ValueError, match="landmarks"):
        edit(crops[:2], 1.0)


def test_appearance_field_recovers_a_planted_shading_and_applies_it():
    import cv2

    from training.appearance import LOG_OFFSET, fit_appearance

    rng = np.random.default_rng(5)
    face = _face()
    planted = np.zeros((256, 256), np.float32)
    cv2.circle(planted, (90, 160), 18, 0.2, -1)  # a lit left cheek
    cv2.circle(planted, (166, 160), 18, -0.15, -1)  # a darker right one
    planted = cv2.GaussianBlur(planted, (0, 0), 3)
    crops, lms, person, label = [], [], [], []
    for p in range(6):
        tex = cv2.GaussianBlur(rng.uniform(60, 200, (256, 256)).astype(np.float32), (0, 0), 2)
        neutral = np.repeat(tex[..., None], 3, axis=2)
        happy = (neutral + LOG_OFFSET) * np.exp(planted)[..., None] - LOG_OFFSET
        for img, lab in ((neutral, 0), (happy, 1)):
            crops.append(np.clip(np.rint(img), 0, 255).astype(np.uint8))
            lms.append(face)
            person.append(f"p{p}")
            label.append(lab)
    crops, lms, person, label = np.array(crops), np.array(lms), np.array(person), np.array(label)
    app = fit_appearance(crops, lms, person, label, np.arange(len(crops)))
    assert app.people == 6
    inside = np.zeros((256, 256), bool)
    inside[140:180, 70:186] = True
    corr = np.corrcoef(app.field[inside], planted[inside])[0, 1]
    assert corr > 0.9
    assert abs(app.field[:40, :40]).max() < 0.02  # outside the face: nothing
    target = crops[0]
    assert np.array_equal(app.apply(target, face, 0.0, np.zeros((256, 256))), target)
    assert np.array_equal(app.apply(target, face, 2.0, np.ones((256, 256))), target)  # the mouth is the mouth model's
    lit = app.apply(target, face, 2.0, np.zeros((256, 256)))
    assert lit[160, 90].mean() > target[160, 90].mean() * 1.2 and lit[160, 166].mean() < target[160, 166].mean()


def test_broad_half_keeps_the_wider_openings():
    from training.geometry import broad_half, iod, opening

    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, (68, 2)) * 5 + 100
    base[36:42] = [80, 90]
    base[42:48] = [120, 90]  # eye centres 40 px apart
    lm = np.repeat(base[None], 10, axis=0)
    gaps = np.arange(10.0)
    for k, g in enumerate(gaps):
        lm[k, [61, 62, 63], 1] = 150.0
        lm[k, [67, 66, 65], 1] = 150.0 + g
    rows = np.arange(10)[::-1]
    kept = broad_half(lm, rows)
    assert sorted(kept.tolist()) == [5, 6, 7, 8, 9]
    assert np.allclose(opening(lm[kept]) / iod(lm[kept]), gaps[kept] / 40.0)
