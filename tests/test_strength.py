"""The strength rule: a face that already smiles gets only what it lacks of the smile asked for
(smilecore.strength, smilecore.facemesh.smile_level)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import smilecore
from smilecore import facemesh, strength
from smilecore.align import align_face, extract_crop


def _level(photo: np.ndarray) -> float:
    face = smilecore.detect_faces(photo)[0]
    crop = extract_crop(photo, align_face(face.landmarks, 256))
    return float(facemesh.network().read(crop[None]).level[0])


def test_neutral_faces_get_the_strength_asked_for_up_to_a_broad_smile():
    levels = np.array([-0.8, 0.0, strength.NEUTRAL_SPREAD])
    for lam in (-2.0, -0.5, 0.0, 0.5, 1.0, 2.0):
        assert np.allclose(strength.face_strengths(lam, levels), lam)
    # past a broad smile (2) the smile asked for saturates: 3 and 4 ask for about 2.37 and 2.4
    at3, at4 = strength.face_strengths(3.0, levels), strength.face_strengths(4.0, levels)
    assert np.allclose(at3, at3[0]) and np.allclose(at4, at4[0])
    assert 2.3 < at3[0] < at4[0] < strength.BROAD + strength.SATURATION == pytest.approx(2.4)


def test_the_saturation_is_smooth_monotonic_and_bounded():
    lams = np.linspace(-2.0, 10.0, 1201)
    got = strength.saturated(lams)
    assert np.array_equal(got[lams <= 2.0], lams[lams <= 2.0])  # untouched up to a broad smile
    assert (np.diff(got) > 0).all()  # a higher strength always asks for a little more
    assert got.max() < strength.BROAD + strength.SATURATION
    eps = 1e-4  # the same slope on both sides of 2: no kink
    assert (strength.saturated(2.0 + eps) - strength.saturated(2.0)) / eps == pytest.approx(1.0, abs=1e-3)


def test_a_smiling_face_gets_what_it_lacks_and_never_a_negative_strength():
    levels = np.array([1.0, 1.0 + (1.0 - strength.NEUTRAL_SPREAD)])  # own strength 1 and 2
    assert np.allclose(strength.own_strength(levels), [1.0, 2.0])
    assert np.allclose(strength.face_strengths(0.5, levels), [0.0, 0.0])
    assert np.allclose(strength.face_strengths(1.5, levels), [0.5, 0.0])
    big = float(strength.saturated(3.0))  # 3 asks for a saturated broad smile (about 2.37)
    assert np.allclose(strength.face_strengths(3.0, levels), [big - 1.0, big - 2.0])
    # "less smile" takes away from whatever the face shows
    assert np.allclose(strength.face_strengths(-1.0, levels), [-1.0, -1.0])
    assert strength.face_strengths(0.0, levels).tolist() == [0.0, 0.0]
    # per face, in one call
    assert np.allclose(strength.face_strengths(np.array([1.5, 3.0]), levels), [0.5, big - 2.0])
    # a face that smiles more broadly than any smile asked for is left as it is, even at the maximum
    beyond = np.array([1.0 + 2.5 * (1.0 - strength.NEUTRAL_SPREAD)])  # own strength 2.5
    assert strength.face_strengths(4.0, beyond).tolist() == [0.0]
    assert strength.WIDER in strength.already_smiling(1.3)
    assert strength.already_smiling(2.5).endswith("as broad as Smile makes any smile")


def test_the_mouth_reads_as_smiling_or_not(astronaut, smiling):
    assert _level(smiling) > 1.2  # her own broad smile (about the 80th percentile of real smiles)
    assert _level(astronaut) < strength.NEUTRAL_SPREAD  # the same face with the smile taken away


def test_level_follows_mouth_width_and_corner_lift():
    pts = np.zeros((468, 2))
    for (a, b), x in zip(facemesh.EYE_CORNERS, (-50.0, 50.0)):  # eye centres 100 px apart
        pts[a], pts[b] = (x - 10, 0), (x + 10, 0)
    def level(width, lift):
        p = pts.copy()
        p[facemesh.MOUTH_CORNERS[0]] = (-width * 50, 100 - lift * 100)
        p[facemesh.MOUTH_CORNERS[1]] = (width * 50, 100 - lift * 100)
        p[facemesh.LIP_MIDDLE[0]], p[facemesh.LIP_MIDDLE[1]] = (0, 98), (0, 102)
        return float(facemesh.smile_level(p))
    assert level(*facemesh.LEVEL_NEUTRAL) == pytest.approx(0.0, abs=1e-9)
    assert level(*facemesh.LEVEL_SMILE) == pytest.approx(1.0, abs=1e-9)
    assert level(1.0, 0.0) > level(0.8, 0.0) and level(0.8, 0.1) > level(0.8, 0.0)


def test_a_face_already_smiling_that_much_is_left_bit_identical(smiling):
    res = smilecore.smile(smiling, strength=1.0)
    face = res.faces[0]
    assert not face.edited and face.reason.startswith(strength.ALREADY_SMILING)
    assert "higher strength" in face.reason
    assert np.array_equal(res.image, smiling)


def test_a_broader_smile_asked_for_adds_what_the_face_lacks(smiling, monkeypatch):
    own = float(strength.own_strength(_level(smiling)))
    sent = []
    run = smilecore.SmileModel.run

    def spy(self, crops, lam):
        sent.append(np.asarray(lam, np.float32).copy())
        return run(self, crops, lam)

    monkeypatch.setattr(smilecore.SmileModel, "run", spy)
    asked = smilecore.smile(smiling, strength=3.0)
    assert asked.faces[0].edited
    assert sent[-1].ravel() == pytest.approx([float(strength.saturated(3.0)) - own], abs=1e-4)
    widened = smilecore.smile(smiling, strength=2.0)  # 2 asked: little to add to a broad smile
    moved_2 = np.abs(widened.image.astype(int) - smiling.astype(int)).sum()
    moved_3 = np.abs(asked.image.astype(int) - smiling.astype(int)).sum()
    assert 0 < moved_2 < moved_3


def test_a_neutral_face_is_edited_at_the_default_strength(astronaut):
    res = smilecore.smile(astronaut)
    assert res.faces[0].edited and res.faces[0].reason is None
    assert (np.abs(res.image.astype(int) - astronaut.astype(int)).max(axis=2) > 8).sum() > 300


def test_the_command_says_why_a_smiling_face_was_left(tmp_path, smiling):
    from click.testing import CliRunner

    from smile_cli.main import cli

    src = tmp_path / "smiling.png"
    Image.fromarray(smiling).save(src)
    out = CliRunner().invoke(cli, [str(src), "-o", str(tmp_path / "out.png")])
    assert out.exit_code == 0, out.output
    assert "0 of 1 face smiled, 1 already smiling as much (a higher --strength widens the smile)" in out.output
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png").convert("RGB")), smiling)
    # nothing changed: the very file, not a re-encoding of it (a JPEG would lose quality again)
    assert (tmp_path / "out.png").read_bytes() == src.read_bytes()
    jpeg = tmp_path / "smiling.jpg"
    Image.fromarray(smiling).save(jpeg, quality=90)
    out = CliRunner().invoke(cli, [str(jpeg), "-o", str(tmp_path / "out.jpg")])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "out.jpg").read_bytes() == jpeg.read_bytes()
    # into another format it is written as that format, still unchanged
    out = CliRunner().invoke(cli, [str(jpeg), "-o", str(tmp_path / "out.png")])
    assert out.exit_code == 0, out.output
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png").convert("RGB")), np.asarray(Image.open(jpeg).convert("RGB")))


def test_a_face_left_as_it_is_costs_no_inference(smiling, astronaut, monkeypatch):
    sent = []
    run = smilecore.SmileModel.run

    def spy(self, crops, lam):
        sent.append(len(crops))
        return run(self, crops, lam)

    monkeypatch.setattr(smilecore.SmileModel, "run", spy)
    assert not smilecore.smile(smiling, strength=1.0).faces[0].edited and sent == []
    # two faces side by side, one smiling already: only the other goes through the network
    pair = np.concatenate([smiling, astronaut], axis=1)
    res = smilecore.smile(pair, strength=1.0)
    assert sent == [1] and [f.edited for f in sorted(res.faces, key=lambda f: f.box[0])] == [False, True]
    assert np.array_equal(res.image[:, :512], smiling)


def test_the_report_line_says_whether_a_higher_strength_would_widen_the_smiles():
    from pathlib import Path

    from smile_cli.report import STATUS_OK, PhotoReport

    def line(*owns: float) -> str:
        faces = [{"edited": True, "reason": None}] + [{"edited": False, "reason": strength.already_smiling(o)} for o in owns]
        return PhotoReport(Path("in.jpg"), Path("out.jpg"), STATUS_OK, faces).line()

    assert "1 already smiling as much (a higher --strength widens the smile)" in line(1.3)
    assert "2 already smiling as much (a higher --strength widens their smiles)" in line(1.3, 1.8)
    assert "1 already smiling as much (as broad as Smile makes any smile)" in line(2.6)
    assert "2 already smiling as much (a higher --strength widens 1 of them)" in line(1.3, 2.6)
    assert line(1.3).startswith("in.jpg -> out.jpg: 1 of 2 faces smiled")


def _detection(nose_between_ears: float):
    from smilecore.landmarks import Detection

    # eyes level, the ears 100 px apart, the nose tip at its share of that span from the right ear
    kps = np.array([[130.0, 100.0], [170.0, 100.0], [100.0 + 100 * nose_between_ears, 130.0], [150.0, 160.0],
                    [100.0, 110.0], [200.0, 110.0]])
    return Detection(box=(90.0, 60.0, 210.0, 180.0), keypoints=kps, score=0.9)


def test_how_squarely_a_face_looks_at_the_camera():
    assert _detection(0.5).facing == pytest.approx(1.0)
    assert _detection(0.25).facing == pytest.approx(0.5) == _detection(0.75).facing
    assert _detection(0.0).facing == pytest.approx(0.0) == _detection(1.0).facing
    assert _detection(-0.3).facing == pytest.approx(-0.6)  # the nose tip past the ear's line: a profile
    assert smilecore.detect_faces(np.asarray(Image.open("samples/astronaut.jpg").convert("RGB")))[0].facing > 0.6
    shares = strength.facing_share(np.array([1.0, strength.FACING_FULL, -0.25, strength.FACING_NONE, -0.9]))
    assert shares[0] == shares[1] == 1.0 and 0.0 < shares[2] < 1.0 and shares[3] == shares[4] == 0.0


def test_a_face_turned_away_from_the_camera_is_left_as_it_is_or_smiles_less(monkeypatch, astronaut):
    from smilecore import pipeline

    real = pipeline.detect_faces
    turned = {"facing": 1.0}

    def detect(rgb8):
        faces = real(rgb8)
        for f in faces:
            f.facing = turned["facing"]
        return faces

    monkeypatch.setattr(pipeline, "detect_faces", detect)
    changes = {}
    for facing in (1.0, strength.FACING_FULL, (strength.FACING_FULL + strength.FACING_NONE) / 2):
        turned["facing"] = facing
        res = smilecore.smile(astronaut, strength=2.0)
        assert res.faces[0].edited
        changes[facing] = np.abs(res.image.astype(int) - astronaut).sum()
    assert changes[1.0] == changes[strength.FACING_FULL] > changes[(strength.FACING_FULL + strength.FACING_NONE) / 2] > 0
    turned["facing"] = strength.FACING_NONE
    with pytest.raises(smilecore.NoFaceError, match="turned away from the camera"):
        smilecore.smile(astronaut, strength=2.0)
    pair = np.concatenate([astronaut, astronaut], axis=1)
    real_detect = real

    def one_away(rgb8):
        faces = real_detect(rgb8)
        min(faces, key=lambda f: f.box[0]).facing = -1.0
        return faces

    monkeypatch.setattr(pipeline, "detect_faces", one_away)
    res = smilecore.smile(pair, strength=2.0)
    left, right = sorted(res.faces, key=lambda f: f.box[0])
    assert not left.edited and left.reason == strength.TURNED_AWAY and right.edited
    assert np.array_equal(res.image[:, :512], astronaut)


def test_the_report_line_counts_the_faces_turned_away():
    from pathlib import Path

    from smile_cli.report import STATUS_OK, PhotoReport

    faces = [{"edited": True, "reason": None}, {"edited": False, "reason": strength.TURNED_AWAY}]
    line = PhotoReport(Path("in.jpg"), Path("out.jpg"), STATUS_OK, faces).line()
    assert "1 of 2 faces smiled, 1 turned away from the camera (left as it is)" in line
