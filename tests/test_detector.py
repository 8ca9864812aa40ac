"""The BlazeFace detector (smilecore.blazeface, smilecore.detect): checksum, landmarks as with
dlib HOG, tilted / small / large faces, face-free pictures and a 30-face group photo.

Every picture is built from NASA's public-domain astronaut (samples/astronaut.jpg) or
scikit-image's bundled data (see benchmarks/detector.py, shared with ``python -m benchmarks``).
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

import smilecore
from benchmarks import detector as bench
from smilecore import blazeface, detect as detection, orient
from smilecore.align import align_face, apply_affine
from smilecore.errors import ModelError

ROOT = Path(__file__).resolve().parents[1]

#: dlib's five landmarks on samples/astronaut.jpg with dlib HOG's box (175, 76, 266, 167),
#: as the engine computed them before BlazeFace (commit 79c2872)
HOG_LANDMARKS = bench.ASTRONAUT_LANDMARKS


def _crop_corners(landmarks: np.ndarray) -> np.ndarray:
    """Where the corners and centre of the aligned 256² crop lie in the photo."""
    a = align_face(landmarks)
    s = a.size - 1
    return apply_affine(a.inverse, np.array([[0, 0], [s, 0], [0, s], [s, s], [s / 2, s / 2]], np.float64))


def test_shipped_detector_passes_its_sha256():
    path = blazeface.verify(blazeface.SHORT)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == blazeface.SHORT.sha256
    assert path.parent.joinpath("NOTICE").is_file() and path.parent.joinpath("BLAZEFACE-LICENSE.txt").is_file()


def test_a_changed_detector_file_is_refused(tmp_path):
    bad = tmp_path / blazeface.SHORT.file
    shutil.copy(blazeface.MODELS_DIR / blazeface.SHORT.file, bad)
    with bad.open("r+b") as fh:
        fh.seek(1000)
        byte = fh.read(1)
        fh.seek(1000)
        fh.write(bytes([byte[0] ^ 1]))
    with pytest.raises(ModelError, match="checksum"):
        blazeface.BlazeFace(blazeface.SHORT, bad)
    with pytest.raises(ModelError, match="missing"):
        blazeface.verify(blazeface.SHORT, tmp_path / "nope.onnx")


@pytest.mark.parametrize("h, w", [(128, 128), (192, 256)])
def test_anchors_match_the_network_outputs(h, w):
    net = blazeface.network()
    a = blazeface.anchors(blazeface.SHORT, h, w)
    assert len(a) == (h // 8) * (w // 8) * 2 + (h // 16) * (w // 16) * 6
    assert len(a) == 896 or (h, w) != (128, 128)
    reg, logit = net.session.run(None, {"input": np.zeros((2, h, w, 3), np.float32)})
    assert reg.shape == (2, len(a), 16) and logit.shape == (2, len(a), 1)
    with pytest.raises(ValueError, match="multiples"):
        net.run(np.zeros((1, 100, 128, 3), np.uint8))


def test_keypoints_land_on_her_eyes_nose_and_mouth():
    dets = detection.detect(bench.astronaut())
    assert len(dets) == 1
    k = dets[0].keypoints
    eyes = np.array([(HOG_LANDMARKS[2] + HOG_LANDMARKS[3]) / 2, (HOG_LANDMARKS[0] + HOG_LANDMARKS[1]) / 2])
    assert np.abs(k[:2] - eyes).max() < 8  # subject's right eye is on the image's left
    assert np.abs(k[2] - HOG_LANDMARKS[4]).max() < 12


def test_astronaut_crop_matches_the_hog_era_crop_within_one_pixel():
    found = smilecore.detect_faces(bench.astronaut())  # samples/astronaut.jpg
    assert len(found) == 1
    face = found[0]
    assert np.abs(face.landmarks - HOG_LANDMARKS).max() <= 1.0
    assert np.abs(_crop_corners(face.landmarks) - _crop_corners(HOG_LANDMARKS)).max() < 1.0
    # the box keeps HOG's shape and place
    assert np.abs(np.array(face.box) - np.array(bench.ASTRONAUT_FACE)).max() <= 8
    assert 0.5 <= face.score <= 1.0


@pytest.mark.parametrize("angle", [-45, -30, -15, 15, 30, 45])
def test_tilted_faces_are_found_with_landmarks_that_turn_with_them(angle):
    img, centre = bench.tilted(angle)
    found = smilecore.detect_faces(img)
    assert len(found) == 1
    m = cv2.getRotationMatrix2D(centre, angle, 1.0)
    expected = HOG_LANDMARKS @ m[:, :2].T + m[:, 2]
    assert np.abs(found[0].landmarks - expected).max() <= 2.0


@pytest.mark.parametrize("face_px", [20, 24, 32, 48, 300, 480, 640])
def test_small_and_large_faces_are_found(face_px):
    img, centre = bench.scaled(face_px)
    dets = detection.detect(img)
    assert len(dets) == 1 and bench.contains(dets[0].box, centre)
    size = detection._size(dets[0].box)
    assert 0.8 * face_px <= size <= 1.35 * face_px


def test_small_faces_in_a_large_photo_are_found():
    # 12 MP: a 150-px face (24 px in the 640-px detection copy) beside the textured background
    img, centre = bench.scaled(150, canvas=(3000, 4000))
    found = smilecore.detect_faces(img)
    assert len(found) == 1 and bench.contains(found[0].box, centre)


def test_no_face_on_face_free_pictures():
    pictures = bench.face_free_pictures()
    assert len(pictures) >= 30
    false = {name: len(detection.detect(p)) for name, p in pictures.items()}
    assert not any(false.values()), {k: v for k, v in false.items() if v}


@pytest.mark.parametrize("cell", [260, 200])
def test_every_face_of_a_30_face_group_photo(cell):
    grid, centres = bench.grid_photo(cell=cell)  # faces ~3 % of the long side
    found = smilecore.detect_faces(grid)
    assert len(found) == 30
    assert all(any(bench.contains(f.box, c) for f in found) for c in centres)


def test_a_weak_candidate_around_a_smaller_face_is_not_verified():
    # a box three times a face's size, centred on it, must not pass as a face
    a = bench.astronaut()
    x0, y0, x1, y1 = bench.ASTRONAUT_FACE
    c = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    half = 1.5 * (x1 - x0)
    big = np.array([c[0] - half, c[1] - half, c[0] + half, c[1] + half])
    kps = np.array([[c[0] - 20, c[1] - 10], [c[0] + 20, c[1] - 10], c, c + [0, 25], c - [45, 0], c + [45, 0]])
    assert detection._verify_views(blazeface.network(), a, [(big, kps, 0.55, 3)]) == [False]
    face = np.array([x0, y0, x1, y1], np.float64)
    assert detection._verify_views(blazeface.network(), a, [(face, kps, 0.55, 3)]) == [True]


def test_dlib_hog_only_judges_views_of_faces_found(monkeypatch, astronaut):
    # the HOG detector never searches the photo: it only judges small views of the faces BlazeFace
    # found (their orientation); an upright portrait's face needs one such view
    import smilecore.dlib_models

    real, seen = smilecore.dlib_models._detector(), []

    class Spy:
        def run(self, image, upsample, threshold):
            seen.append((image.shape, upsample))
            return real.run(image, upsample, threshold)

    monkeypatch.setattr(smilecore.dlib_models, "_detector", lambda: Spy())
    view = smilecore.dlib_models.HOG_CONFIRM_VIEW
    assert len(smilecore.detect_faces(astronaut)) == 1
    assert seen == [((view, view), 0)]
    seen.clear()
    assert len(smilecore.detect_faces(bench.grid_photo()[0])) == 30  # a group: no view at all
    assert seen == []


@pytest.mark.skipif(not os.environ.get("SMILE_MEDIAPIPE_WHEEL"), reason="set SMILE_MEDIAPIPE_WHEEL to the mediapipe 0.10.14 wheel")
def test_conversion_script_reproduces_the_shipped_file(tmp_path):
    pytest.importorskip("tflite")
    import subprocess
    import sys

    subprocess.run([sys.executable, str(ROOT / "tools" / "convert_mediapipe.py"), os.environ["SMILE_MEDIAPIPE_WHEEL"],
                    "--out-dir", str(tmp_path)], check=True)
    for name in (blazeface.SHORT.file, "facemesh.onnx"):
        assert (tmp_path / name).read_bytes() == (blazeface.MODELS_DIR / name).read_bytes(), name


def test_the_small_faces_of_a_large_group_photo_are_found_once_each():
    # 12 MP, 108 faces of ~59 px: ~9 px in the 640-px detection copy, too small for the first pass
    grid, centres = bench.large_group_photo()
    assert detection.detect(grid, fine_side=0) == []
    found = smilecore.detect_faces(grid)
    assert len(found) == len(centres) == 108  # faces across the tiles' seams are not found twice
    assert all(any(bench.contains(f.box, c) for f in found) for c in centres)
    assert all(40 <= f.size <= 80 for f in found)
    assert smilecore.detect_faces(grid, small_faces=False) == []


def test_no_face_on_large_face_free_pictures():
    false = {name: len(detection.detect(p)) for name, p in bench.large_face_free_pictures().items()}
    assert len(false) >= 5 and not any(false.values()), false


def test_the_second_pass_runs_only_where_small_faces_may_have_been_missed(monkeypatch):
    calls = []
    real = detection._fine_pass
    monkeypatch.setattr(detection, "_fine_pass", lambda *a: calls.append(a[2]) or real(*a))
    portrait, _ = bench.scaled(600, canvas=(3000, 4000))  # a large face: no second pass
    assert len(detection.detect(portrait)) == 1 and calls == []
    assert len(detection.detect(bench.astronaut())) == 1 and calls == []  # 512 px: the copy is the photo
    small, centre = bench.scaled(60, canvas=(3000, 4000))  # 60 px in 12 MP: only the second pass finds it
    dets = detection.detect(small)
    assert calls == [detection.FINE_MAX_SIDE] and len(dets) == 1 and bench.contains(dets[0].box, centre)


@pytest.mark.parametrize("angle", [160, 180, 200])
def test_a_face_upside_down_is_found_when_nothing_upright_is(angle):
    a = bench.astronaut()
    h, w = a.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)  # turned on a black canvas that holds all of her
    side = int(np.ceil(np.hypot(w, h)))
    m[:, 2] += (side - w) / 2, (side - h) / 2
    turned = cv2.warpAffine(a, m, (side, side), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    assert detection.detect(turned) == []  # BlazeFace alone does not find her this far turned
    (face,) = smilecore.detect_faces(turned)
    expected = HOG_LANDMARKS @ m[:, :2].T + m[:, 2]
    assert np.abs(face.landmarks - expected).max() <= 3.0  # dlib's five points, turned with her
    assert smilecore.detect_faces(turned, upside_down=False) == []


def test_an_upside_down_portrait_smiles_as_the_upright_one(astronaut):
    upright = np.asarray(smilecore.smile(astronaut, strength=2).image).astype(int)
    turned = smilecore.smile(np.ascontiguousarray(astronaut[::-1, ::-1]), strength=2)
    back = np.asarray(turned.image)[::-1, ::-1].astype(int)
    assert np.abs(back - astronaut).mean() > 0.2  # she smiles ...
    assert np.abs(back - upright).mean() < 0.1 and np.abs(back - upright).max() <= 40  # ... as she does upright


def test_no_face_on_face_free_pictures_turned_either():
    pictures = {**bench.face_free_pictures(), **bench.large_face_free_pictures()}
    false = {name: len(detection.detect(p, upside_down=True)) for name, p in pictures.items()}
    assert not any(false.values()), {k: v for k, v in false.items() if v}


def _turned(angle: float, scale: float = 1.0, blur: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The astronaut (blurred by ``blur`` px) turned ``angle`` degrees counter-clockwise and scaled,
    on a grey canvas that holds all of her; and where her HOG-era landmarks are in it."""
    a = bench.astronaut()
    a = cv2.GaussianBlur(a, (0, 0), blur) if blur else a
    h, w = a.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    side = int(np.ceil(np.hypot(w, h) * scale))
    m[:, 2] += (side - w) / 2, (side - h) / 2
    turned = cv2.warpAffine(a, m, (side, side), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                            borderValue=(110, 110, 110) if blur else (0, 0, 0))
    return turned, HOG_LANDMARKS @ m[:, :2].T + m[:, 2]


@pytest.mark.parametrize("angle,scale", [(105, 1.0), (150, 1.0), (225, 1.0), (285, 1.0), (240, 0.5), (250, 0.3)])
def test_a_face_blazeface_reads_in_a_wrong_orientation_gets_its_own_landmarks(angle, scale):
    # BlazeFace finds her at these turns but reads her eye line 60–130° off (on her cheek, her
    # mouth: a smile would be drawn there); her views turned a quarter, half and three quarters
    # of a turn, judged by dlib's HOG detector, put the landmarks back on her eyes and nose
    turned, expected = _turned(angle, scale)
    (face,) = smilecore.detect_faces(turned)
    assert np.abs(face.landmarks - expected).max() <= 4.0 * scale


def test_an_upside_down_portrait_with_a_false_face_in_the_clothes():
    # upside down and soft, BlazeFace finds only a false face in her suit (probability 0.69);
    # the photo turned half a turn shows her face, which replaces it
    turned, expected = _turned(180, 0.5, blur=3.0)
    assert len(detection.detect(turned)) == 1  # the false face
    (face,) = smilecore.detect_faces(turned)
    assert np.abs(face.landmarks - expected).max() <= 3.0


def test_hog_judges_which_way_up_a_face_is(astronaut):
    from smilecore.dlib_models import hog_score

    centre, side = np.array([220.5, 121.5]), 91.0  # her HOG box
    assert hog_score(astronaut, centre, side, 0.0) >= 1.0
    assert hog_score(astronaut, centre, side, 180.0) == -np.inf
    assert hog_score(astronaut, centre, side, 90.0) == -np.inf
    assert hog_score(bench.face_free_pictures()["random ellipses"], np.array([320.0, 240.0]), 120.0, 0.0) == -np.inf
    assert np.isnan(hog_score(astronaut, centre, 15.0, 0.0))  # too small to judge
    # a 60-px face in a 12 MP photo is judged on the photo, not on the small detection copy
    big = cv2.resize(astronaut, None, fx=60 / 91, fy=60 / 91, interpolation=cv2.INTER_AREA)
    photo = np.full((3000, 4000, 3), 128, np.uint8)
    photo[1000 : 1000 + big.shape[0], 2000 : 2000 + big.shape[1]] = big
    c = centre * 60 / 91 + [2000, 1000]
    assert hog_score(photo, c, 60.0, 0.0) >= 1.0 and hog_score(photo, c, 60.0, 180.0) == -np.inf


def test_a_sideways_close_up_is_found_a_quarter_turn_away():
    # her face filling the frame (a close-up at 3 × her size), turned a quarter turn either way:
    # BlazeFace finds nothing as it is or turned half a turn (with room around it, it would); the
    # copy turned back a quarter turn shows her
    x0, y0, x1, y1 = bench.ASTRONAUT_FACE
    cx, cy, h = (x0 + x1) / 2, (y0 + y1) / 2, 0.4 * (x1 - x0)
    top, left = int(cy - h), int(cx - h)
    crop = bench.astronaut()[top : int(cy + h), left : int(cx + h)]
    close = cv2.resize(crop, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    (upright,) = smilecore.detect_faces(close)
    lm, w = upright.landmarks, close.shape[1]
    assert np.abs(lm - ((HOG_LANDMARKS - [left, top] + 0.5) * 3 - 0.5)).max() < 15  # her eyes touch the edges
    for quarters, expected in ((1, np.stack([lm[:, 1], w - 1 - lm[:, 0]], 1)), (3, np.stack([w - 1 - lm[:, 1], lm[:, 0]], 1))):
        sideways = np.ascontiguousarray(np.rot90(close, quarters))  # counter-clockwise
        assert detection.detect(sideways) == [] and detection.detect(np.ascontiguousarray(sideways[::-1, ::-1])) == []
        (face,) = smilecore.detect_faces(sideways)
        # the upright close-up's landmarks, turned (an outer eye corner on the frame's edge is
        # extrapolated differently turned; a face read in a wrong orientation is off by half its size)
        d = np.abs(face.landmarks - expected).max(1)
        assert d.max() <= 0.1 * w, d


def test_warm_up_loads_what_detection_uses():
    import smilecore.dlib_models as dm

    dm._detector.cache_clear()
    dm._predictor5.cache_clear()
    detection.warm_up()
    assert dm._detector.cache_info().currsize == 1 and dm._predictor5.cache_info().currsize == 1


def test_a_small_face_of_a_large_photo_is_judged_on_the_photo_not_the_copy():
    # 60 px in a 12 MP photo is 10 px in the detection copy, where HOG sees nothing: judged there,
    # she was read again on turned views and got landmarks half her size off
    img, expected = bench.pasted(bench.large_face_free_pictures()["smooth noise σ=12 4000×3000"], 60, 20, (0.4, 0.45))
    (face,) = smilecore.detect_faces(img)
    assert np.abs(face.landmarks - expected).max() <= 3.0


def test_an_unsure_small_face_is_not_swapped_for_a_false_face_turned_half_a_turn():
    scene = np.ascontiguousarray(bench.large_face_free_pictures()["scenes ×2, 4000×3000"][:, ::-1][:2000, :3000])
    assert detection.detect(scene, upside_down=True) == []  # BlazeFace's 0.87 in it turned: HOG sees no face
    img, expected = bench.pasted(scene, 80, 0, (0.3, 0.3), contrast=0.5)
    (face,) = smilecore.detect_faces(img)
    assert face.score < detection.SURE and np.abs(face.landmarks - expected).max() <= 3.0


def test_faces_behind_a_close_up_are_found():
    # a close-up (her face 600 px, 20 % of the long side) with four people behind (100-120 px): the
    # larger levels once ran only when no face or only small ones had been found, so only she was
    img, marks = bench.close_up_with_people_behind()
    found = smilecore.detect_faces(img)
    assert len(found) == 5 and bench.with_their_landmarks(found, marks) == 5


def test_what_the_larger_levels_see_inside_a_close_up_leaves_it_as_it_was():
    # parts of a face (nose and mouth at the 640-px level) blended into it would move its keypoints
    img, _ = bench.scaled(250, canvas=(480, 640))
    net = detection.blazeface.network()
    (a,), (b,) = detection._first_pass(net, img, 0.5), detection._first_pass(net, img, 0.5, every=True)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@pytest.mark.parametrize("quarters", [1, 3])
def test_a_group_photo_lying_on_its_side_is_searched_standing_up(quarters):
    # six faces of 80 px at low contrast, the photo turned a quarter turn: BlazeFace read two of them
    # turned the wrong way (landmarks 38 px off) before the photo was searched again turned upright
    img, marks = bench.group_on_its_side(quarters)
    found = smilecore.detect_faces(img)
    assert len(found) == 6 and bench.with_their_landmarks(found, marks) == 6


def test_a_photo_is_turned_only_when_most_of_its_faces_agree():
    def faces(*rolls):
        out = []
        for r in rolls:
            u = np.array([np.cos(np.radians(r)), np.sin(np.radians(r))])
            kps = np.array([[0.0, 0.0], 30 * u, 15 * u, 15 * u, -10 * u, 40 * u]) + 100
            out.append(detection.Detection(box=(70.0, 70.0, 140.0, 140.0), keypoints=kps, score=0.9))
        return out

    assert orient.photo_turn(faces(), detection.TURN_TOLERANCE) == 0
    assert orient.photo_turn(faces(0, 5, -8), detection.TURN_TOLERANCE) == 0
    assert orient.photo_turn(faces(0, 0, 90), detection.TURN_TOLERANCE) == 0  # someone lying down in an upright group
    assert orient.photo_turn(faces(90), detection.TURN_TOLERANCE) == 0  # one face alone: orient.reread reads it turned
    assert orient.photo_turn(faces(88, 95, 0), detection.TURN_TOLERANCE) == 1  # np.rot90 once stands these upright
    assert orient.photo_turn(faces(-92, -85, -90), detection.TURN_TOLERANCE) == 3
    assert orient.photo_turn(faces(178, -175), detection.TURN_TOLERANCE) == 2
    assert orient.photo_turn(faces(50, 55), detection.TURN_TOLERANCE) == 0  # nearer half-way: each read again on its own, not turned
    assert orient.photo_turn(faces(90, -90), detection.TURN_TOLERANCE) == 0  # no majority
