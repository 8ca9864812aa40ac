"""A mouth that something covers (a hand, a face mask, a microphone) is left as it is
(smilecore.mouth_hidden): the smile network would draw lips and teeth on the cover."""
from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

import smilecore
from smilecore import facemesh, mouth_hidden, strength
from smilecore.align import align_face, extract_crop
from smilecore.errors import ModelError


def mouth_of(img: np.ndarray) -> tuple[np.ndarray, float]:
    """The mouth's centre in photo pixels and the distance between the eyes, read as the engine reads them."""
    face = smilecore.detect_faces(img)[0]
    al = align_face(face.landmarks, 256)
    pts = facemesh.network().landmarks(extract_crop(img, al)[None])[0]
    box = mouth_hidden.window_box(pts)
    centre = al.inverse @ np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2, 1.0])
    eyes = [(pts[a] + pts[b]) / 2 for a, b in mouth_hidden.EYE_CORNERS]
    return centre, float(np.linalg.norm(eyes[0] - eyes[1])) / al.scale


def cover(img: np.ndarray, kind: str, at: str = "mouth") -> np.ndarray:
    """``img`` with a hand, a face mask, a microphone or a finger in front of the mouth (``at="cheek"``: a hand on the
    cheek; ``at="corner"``: at a corner of the mouth, over about a third of the lips; ``at="chin"``: a finger on the chin)."""
    out = np.array(img, copy=True)
    c, eye = mouth_of(img)
    if at == "cheek":
        c = c + np.array([-0.95 * eye, -0.45 * eye])
    elif at == "corner":
        c = c + np.array([0.45 * eye, 0.0])
    x, y = (int(round(v)) for v in c)
    e = int(round(eye))
    if kind == "hand":
        cv2.ellipse(out, (x, y + e // 8), (int(0.75 * e), int(0.42 * e)), 15, 0, 360, (214, 168, 140), -1)
        for k in range(-1, 3):
            cv2.line(out, (x - e // 2 + k * e // 4, y - e // 3), (x - e // 2 + k * e // 4 + e // 8, y + e // 2), (170, 125, 100), 2)
    elif kind == "finger":  # one finger up across both lips, a little off their middle (as "shh")
        fx, w = x + int(0.15 * e), max(1, int(0.2 * e))
        top, bottom = (y - int(0.55 * e), y + int(0.9 * e)) if at == "mouth" else (y + int(0.45 * e), y + int(1.5 * e))
        cv2.line(out, (fx, top), (fx, bottom), (214, 168, 140), w)
        cv2.circle(out, (fx, top), w // 2, (214, 168, 140), -1)
    elif kind == "mask":
        pts = np.array([[x - 1.1 * e, y - 0.55 * e], [x + 1.1 * e, y - 0.55 * e], [x + 0.9 * e, y + 0.7 * e],
                        [x, y + 1.1 * e], [x - 0.9 * e, y + 0.7 * e]])
        cv2.fillPoly(out, [np.rint(pts).astype(np.int32)], (232, 234, 238))
        for k in range(3):
            cv2.line(out, (x - e, y - e // 4 + k * e // 4), (x + e, y - e // 4 + k * e // 4), (200, 202, 208), 2)
    else:  # a microphone
        cv2.rectangle(out, (x - e // 8, y), (x + e // 8, y + 3 * e), (28, 28, 30), -1)
        cv2.circle(out, (x, y), int(0.3 * e), (60, 60, 64), -1)
    return out


@pytest.mark.parametrize("kind", ["hand", "mask", "mic"])
def test_a_covered_mouth_is_left_as_it_is(astronaut, kind):
    covered = cover(astronaut, kind)
    for lam in (2.0, -1.0):  # less smile is not drawn on it either
        with pytest.raises(smilecore.NoFaceError, match=r"1 face\(s\) found but none edited \(mouth hidden") as e:
            smilecore.smile(covered, strength=lam)
        assert not e.value.faces[0].edited and e.value.faces[0].reason == strength.MOUTH_HIDDEN


def test_the_command_says_so_and_keeps_the_photo_with_keep_unchanged(astronaut, tmp_path):
    from PIL import Image
    from click.testing import CliRunner

    from smile_cli.main import cli

    src = tmp_path / "masked.png"
    Image.fromarray(cover(astronaut, "mask")).save(src)
    r = CliRunner().invoke(cli, ["run", str(src), "-s", "2"])
    assert r.exit_code == 3 and "mouth hidden" in r.output and len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "masked.smile.png").exists()
    r = CliRunner().invoke(cli, ["run", str(src), "-s", "2", "--keep-unchanged"])
    assert r.exit_code == 0, r.output
    assert np.array_equal(np.asarray(Image.open(tmp_path / "masked.smile.png")), np.asarray(Image.open(src)))


def test_a_microphone_at_a_corner_of_the_mouth_is_left_as_it_is(astronaut):
    # a third of the lips covered: the weights before 2026-12-07 read it as seen (0.01), and the smile bent the
    # microphone's stick and head with the mouth
    covered = cover(astronaut, "mic", at="corner")
    with pytest.raises(smilecore.NoFaceError, match=r"mouth hidden"):
        smilecore.smile(covered, strength=2.0)


def test_a_finger_across_the_lips_is_left_as_it_is(smiling):
    # a finger up across both lips covers a tenth of their area: the weights before the forty-first session read it
    # as seen on her smiling mouth (0.003), and a broader smile bent it with the lips
    with pytest.raises(smilecore.NoFaceError, match=r"mouth hidden"):
        smilecore.smile(cover(smiling, "finger"), strength=2.0)


def test_a_finger_on_the_chin_does_not_stop_the_smile(astronaut):
    on_chin = cover(astronaut, "finger", at="chin")
    res = smilecore.smile(on_chin, strength=2.0)
    assert res.faces[0].edited and np.abs(res.image.astype(int) - on_chin).sum() > 0


def test_a_hand_beside_the_mouth_does_not_stop_the_smile(astronaut):
    beside = cover(astronaut, "hand", at="cheek")
    assert not np.array_equal(beside, astronaut)
    res = smilecore.smile(beside, strength=1.0)
    assert res.faces[0].edited and res.faces[0].reason is None
    assert np.abs(res.image.astype(int) - beside).sum() > 0


def test_the_uncovered_portrait_reads_seen_and_covered_ones_hidden(astronaut, smiling):
    face = smilecore.detect_faces(astronaut)[0]
    def reading(img):
        crop = extract_crop(img, align_face(face.landmarks, 256))[None]
        return float(facemesh.network().read(crop).hidden[0])

    assert reading(astronaut) < 0.1 and reading(smiling) < 0.1
    assert all(reading(cover(astronaut, k)) > 0.9 for k in ("hand", "mask", "mic"))


def test_two_faces_one_covered(astronaut):
    pair = np.concatenate([cover(astronaut, "mask"), astronaut], axis=1)
    res = smilecore.smile(pair, strength=1.0)
    left, right = sorted(res.faces, key=lambda f: f.box[0])
    assert not left.edited and left.reason == strength.MOUTH_HIDDEN and right.edited
    assert np.array_equal(res.image[:, :512], pair[:, :512])


def test_a_window_past_the_photo_is_not_judged():
    inverse = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert mouth_hidden.in_photo(np.array([10, 10, 50, 30]), inverse, (100, 100))
    assert not mouth_hidden.in_photo(np.array([10, 80, 50, 120]), inverse, (100, 100))
    assert not mouth_hidden.in_photo(np.array([-5, 10, 50, 30]), inverse, (100, 100))


def test_the_report_line_counts_the_covered_mouths():
    from pathlib import Path

    from smile_cli.report import STATUS_OK, PhotoReport

    faces = [{"edited": True, "reason": None}, {"edited": False, "reason": strength.MOUTH_HIDDEN},
             {"edited": False, "reason": strength.MOUTH_HIDDEN}]
    line = PhotoReport(Path("in.jpg"), Path("out.jpg"), STATUS_OK, faces).line()
    assert "1 of 3 faces smiled, 2 with the mouth hidden (left as they are)" in line


def test_the_weights_are_checked(tmp_path, monkeypatch):
    bad = tmp_path / "mouth-hidden.json"
    shutil.copy(mouth_hidden.MODELS_DIR / mouth_hidden.WEIGHTS_FILE, bad)
    d = json.loads(bad.read_text())
    d["b2"] += 1.0
    bad.write_text(json.dumps(d))
    with pytest.raises(ModelError, match="fails its checksum"):
        mouth_hidden.HiddenMouth(bad)
    model = mouth_hidden.HiddenMouth()
    assert model.w1.shape == (len(model.mean), len(model.b1))
    x = model.mean[None] + model.scale[None] * np.linspace(-1, 1, len(model.mean))[None]
    z = np.maximum(np.linspace(-1, 1, len(model.mean)) @ model.w1 + model.b1, 0) @ model.w2 + model.b2
    assert model.probability(x)[0] == pytest.approx(1 / (1 + np.exp(-np.clip(z, -40, 40))), rel=1e-9)
    halfway = mouth_hidden.HiddenMouth.from_weights({**d, "b2": model.b2 - z})  # the same net, its log-odds 0 there
    assert halfway.probability(x)[0] == pytest.approx(0.5)


def _clip(path, frames: list[np.ndarray], fps: int = 25) -> None:
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv444p"
        vs.codec_context.options = {"crf": "0", "preset": "ultrafast"}
        for f in frames:
            for p in vs.encode(av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv444p")):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)


def _frames(path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24").astype(int) for f in c.decode(video=0)]


def test_a_video_smile_fades_out_while_a_hand_covers_the_mouth(astronaut, tmp_path):
    from smilecore.video import smile_video
    from smilecore.video_track import FADE_FRAMES

    covered = cover(astronaut, "mask")
    pattern = [astronaut] * 12 + [covered] * 24 + [astronaut] * 24
    _clip(tmp_path / "in.mkv", pattern)
    res = smile_video(tmp_path / "in.mkv", tmp_path / "out.mkv", strength=2, crf=0)
    src, out = _frames(tmp_path / "in.mkv"), _frames(tmp_path / "out.mkv")
    c, eye = mouth_of(astronaut)
    x, y, e = int(c[0]), int(c[1]), int(eye)
    moved = [np.abs(o[y - e // 2:y + e // 2, x - e:x + e] - s[y - e // 2:y + e // 2, x - e:x + e]).mean() for s, o in zip(src, out)]
    assert min(moved[:12]) > 3  # smiling before the mask...
    assert max(moved[14:36]) == 0  # ...not a pixel drawn on it (at most one network call late)...
    back = moved[36:36 + FADE_FRAMES + 4]
    assert back == sorted(back) and back[0] < 1 and sum(0 < m < back[-1] for m in back) >= FADE_FRAMES - 3  # ...eased back...
    assert min(moved[36 + FADE_FRAMES + 4:]) > 3  # ...smiling once it is gone
    assert res.tracks[0]["edited"] and res.faces_edited == 1


def test_a_video_with_the_mouth_hidden_throughout_says_so(astronaut, tmp_path):
    from smilecore.errors import NoFaceError
    from smilecore.video import smile_video

    _clip(tmp_path / "in.mkv", [cover(astronaut, "hand")] * 16)
    with pytest.raises(NoFaceError, match="mouth hidden"):
        smile_video(tmp_path / "in.mkv", tmp_path / "out.mkv", strength=2, crf=0)
    assert not (tmp_path / "out.mkv").exists()


def test_a_video_whose_faces_are_all_covered_lists_them_with_the_reason(astronaut, tmp_path):
    from click.testing import CliRunner

    from smile_cli.main import cli

    pair = np.concatenate([cover(astronaut, "mask"), cover(astronaut, "hand")], axis=1)
    _clip(tmp_path / "two.mkv", [pair] * 10)
    r = CliRunner().invoke(cli, ["run", str(tmp_path / "two.mkv"), "-s", "3", "--json", "-o", str(tmp_path / "o.mkv")])
    assert r.exit_code == 3, r.output
    photo = json.loads(r.stdout)["photos"][0]
    assert photo["faces_found"] == 2 and [f["reason"] for f in photo["faces"]] == [strength.MOUTH_HIDDEN] * 2
    assert not (tmp_path / "o.mkv").exists()


def test_a_covered_face_that_reads_uncovered_once_is_still_reported_covered(astronaut, tmp_path, monkeypatch):
    from smilecore.video import smile_video

    real, calls = mouth_hidden.hidden, []

    def wavering(crops, pts):  # the second reading misses the cover, every other one finds it
        calls.append(len(crops))
        p = real(crops, pts)
        return p * 0 if len(calls) == 2 else p

    monkeypatch.setattr(mouth_hidden, "hidden", wavering)
    _clip(tmp_path / "in.mkv", [cover(astronaut, "hand")] * 10)
    from smilecore.errors import NoFaceError

    with pytest.raises(NoFaceError) as e:
        smile_video(tmp_path / "in.mkv", tmp_path / "out.mkv", strength=3, crf=0)
    assert [f["reason"] for f in e.value.faces] == [strength.MOUTH_HIDDEN], e.value.faces
