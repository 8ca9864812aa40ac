"""smilecore.smile() end to end on the public-domain astronaut, with fixture models."""
import io

import numpy as np
import pytest
from PIL import Image

import smilecore
from smilecore import InputError, NoFaceError, UsageError


def _changed(a, b):
    d = np.asarray(a).astype(int) != np.asarray(b).astype(int)
    return d.any(axis=-1) if d.ndim == 3 else d


def test_smiles_the_face_and_leaves_the_rest(astronaut, fixture_models):
    r = smilecore.smile(Image.fromarray(astronaut), strength=1.0, model=fixture_models["shift"])
    assert isinstance(r.image, Image.Image) and r.image.size == (512, 512) and r.image.mode == "RGB"
    assert [f.edited for f in r.faces] == [True]
    x0, y0, x1, y1 = r.faces[0].box
    assert 150 < (x0 + x1) / 2 < 300 and 60 < (y0 + y1) / 2 < 200  # her face
    changed = _changed(r.image, astronaut)
    assert changed.sum() > 2000
    assert not np.any(changed & (r.mask == 0))
    assert r.mask.shape == (512, 512) and r.mask.max() == pytest.approx(1.0)
    assert {"detect", "align", "infer", "composite"} <= set(r.timings)


def test_strength_zero_returns_input_unchanged(astronaut, fixture_models):
    r = smilecore.smile(astronaut, strength=0, model=fixture_models["shift"])
    assert np.array_equal(r.image, astronaut)
    assert r.faces[0].edited is False and r.faces[0].reason == "strength 0"


def test_identity_model_is_bit_identical(astronaut, fixture_models):
    r = smilecore.smile(astronaut, strength=2.0, model=fixture_models["identity"])
    assert np.array_equal(r.image, astronaut) and r.faces[0].edited


def test_no_face_raises(fixture_models):
    grad = np.tile(np.linspace(0, 255, 400).astype(np.uint8), (300, 1))
    with pytest.raises(NoFaceError, match="no face found"):
        smilecore.smile(grad, model=fixture_models["shift"])


def _two_faces(astronaut):
    big = astronaut
    small = np.asarray(Image.fromarray(astronaut).resize((384, 384), Image.BILINEAR))
    canvas = np.full((512, 512 + 384, 3), 255, np.uint8)
    canvas[:, :512] = big
    canvas[:384, 512:] = small
    return canvas


def test_several_faces_all_largest_and_by_index(astronaut, fixture_models):
    img = _two_faces(astronaut)
    m = fixture_models["shift"]
    faces = smilecore.detect_faces(img)
    assert len(faces) == 2 and faces[0].size > faces[1].size
    r_all = smilecore.smile(img, model=m)
    assert [f.edited for f in r_all.faces] == [True, True]
    r_big = smilecore.smile(img, faces="largest", model=m)
    assert [f.edited for f in r_big.faces] == [True, False]
    assert not _changed(r_big.image, img)[:, 512:].any()
    r_one = smilecore.smile(img, faces=[1], model=m)
    assert [f.edited for f in r_one.faces] == [False, True]
    assert not _changed(r_one.image, img)[:, :512].any()
    with pytest.raises(UsageError, match="face index 5 does not exist: 2 face"):
        smilecore.smile(img, faces=[5], model=m)


def test_min_face_filters_and_reports(astronaut, fixture_models):
    img = _two_faces(astronaut)
    r = smilecore.smile(img, min_face=80, model=fixture_models["shift"])
    assert [f.edited for f in r.faces] == [True, False]
    assert r.faces[1].reason == "smaller than the smallest face asked for (80 px)"
    with pytest.raises(NoFaceError, match="none chosen"):
        smilecore.smile(img, min_face=5000, model=fixture_models["shift"])


def test_selection_limits_the_change(astronaut, fixture_models):
    sel = np.zeros(astronaut.shape[:2], np.uint8)
    sel[:, :230] = 255  # the left half of her face only
    r = smilecore.smile(astronaut, selection=sel, model=fixture_models["shift"])
    changed = _changed(r.image, astronaut)
    assert changed[:, :230].sum() > 500
    assert not changed[:, 230:].any()


def test_selection_excluding_the_face_means_no_face(astronaut, fixture_models):
    sel = np.zeros(astronaut.shape[:2], np.uint8)
    sel[400:, 400:] = 255
    with pytest.raises(NoFaceError, match="outside the selection"):
        smilecore.smile(astronaut, selection=sel, model=fixture_models["shift"])


def test_strength_outside_model_range(astronaut, fixture_models):
    with pytest.raises(UsageError, match=r"outside this model's range \[-2, 4\]"):
        smilecore.smile(astronaut, strength=9, model=fixture_models["shift"])


def test_rgba_keeps_alpha(astronaut, fixture_models):
    alpha = np.random.default_rng(0).integers(1, 256, astronaut.shape[:2], dtype=np.uint8)
    img = Image.fromarray(np.dstack([astronaut, alpha]), "RGBA")
    r = smilecore.smile(img, model=fixture_models["shift"])
    out = np.asarray(r.image)
    assert r.image.mode == "RGBA"
    assert np.array_equal(out[..., 3], alpha)
    assert _changed(out[..., :3], astronaut).sum() > 2000


def test_16bit_rgb_array_keeps_depth(astronaut, fixture_models):
    img16 = astronaut.astype(np.uint16) * 256 + 3
    r = smilecore.smile(img16, model=fixture_models["shift"])
    assert r.image.dtype == np.uint16 and r.image.shape == img16.shape
    changed = _changed(r.image, img16)
    assert changed.sum() > 2000
    assert np.array_equal(r.image[~changed], img16[~changed])
    # untouched 16-bit values keep their low byte
    assert np.all(r.image[r.mask == 0] % 256 == 3)


def test_16bit_grey_pil_keeps_mode(astronaut, fixture_models):
    grey = (np.asarray(Image.fromarray(astronaut).convert("L")).astype(np.uint16) * 257)
    img = Image.fromarray(grey.astype("<u2"))
    assert img.mode == "I;16"
    r = smilecore.smile(img, model=fixture_models["shift"])
    assert r.image.mode == "I;16"
    out = np.asarray(r.image)
    assert out.dtype == np.uint16 and _changed(out, grey).sum() > 2000


def test_exif_orientation_is_applied(astronaut, fixture_models):
    # store the photo rotated, with an EXIF tag saying how to turn it upright (6 = rotate 90 CW)
    stored = Image.fromarray(astronaut).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    stored.save(buf, "PNG", exif=exif.tobytes())
    img = Image.open(io.BytesIO(buf.getvalue()))
    r = smilecore.smile(img, model=fixture_models["shift"])  # no face would be found sideways
    assert r.image.size == (512, 512)
    assert r.faces[0].edited
    assert r.image.getexif().get(0x0112, 1) == 1


def test_icc_profile_is_kept(astronaut, fixture_models):
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    img = Image.fromarray(astronaut)
    img.info["icc_profile"] = icc
    r = smilecore.smile(img, model=fixture_models["shift"])
    assert r.image.info.get("icc_profile") == icc


def test_bad_arrays_are_refused(fixture_models):
    with pytest.raises(InputError, match="dtype float64"):
        smilecore.smile(np.zeros((10, 10, 3)), model=fixture_models["shift"])
    with pytest.raises(InputError, match="not an image"):
        smilecore.smile(np.zeros((10, 10, 7), np.uint8), model=fixture_models["shift"])


def test_pixel_limit(astronaut, fixture_models):
    from smilecore import ImageTooLargeError

    with pytest.raises(ImageTooLargeError, match="above the limit"):
        smilecore.smile(astronaut, model=fixture_models["shift"], max_pixels=100_000)


def test_tightly_cropped_portrait_is_found(astronaut, fixture_models):
    tight = np.ascontiguousarray(astronaut[70:190, 165:285])  # the face fills the frame
    faces = smilecore.detect_faces(tight)
    assert len(faces) == 1
    x0, y0, x1, y1 = faces[0].box
    assert x0 >= 0 and y0 >= 0 and x1 <= 120 and y1 <= 120
    r = smilecore.smile(tight, model=fixture_models["shift"])
    assert r.faces[0].edited and _changed(r.image, tight).sum() > 500


def test_one_face_record_from_detection_to_json(astronaut, fixture_models):
    """smile() returns the detector's own Face records, filled in; to_dict is the JSON every command prints."""
    found = smilecore.detect_faces(astronaut)
    r = smilecore.smile(astronaut, strength=1.0, model=fixture_models["shift"])
    (face,) = r.faces
    assert isinstance(face, smilecore.Face) and type(found[0]) is type(face)
    assert face.box == found[0].box and np.allclose(face.landmarks, found[0].landmarks) and face.index == 0
    x0, y0, x1, y1 = face.region
    assert face.weight.shape == (y1 - y0, x1 - x0) and face.alignment is not None
    mask = np.zeros((512, 512), np.float32)
    mask[y0:y1, x0:x1] = face.weight
    assert np.array_equal(r.mask, mask)
    d = face.to_dict()
    assert list(d) == ["index", "box", "score", "edited", "reason"]
    assert d == {"index": 0, "box": list(face.box), "score": round(face.score, 3), "edited": True, "reason": None}
    assert found[0].to_dict(("index", "box", "score")) == {"index": 0, "box": list(face.box), "score": round(face.score, 3)}
    assert found[0].to_dict()["edited"] is False and found[0].region is None


def test_faces_left_alone_are_listed_with_their_reason(astronaut, fixture_models):
    # none chosen: the error carries the faces found, each with why it was left alone
    with pytest.raises(NoFaceError) as exc:
        smilecore.smile(_two_faces(astronaut), min_face=5000, model=fixture_models["shift"])
    assert len(exc.value.faces) == 2 and all("smallest face asked for" in f.reason for f in exc.value.faces)
    with pytest.raises(NoFaceError, match=r"none chosen \(outside the selection\)") as exc:
        smilecore.smile(astronaut, selection=np.zeros(astronaut.shape[:2], np.uint8), model=fixture_models["shift"])
    assert [f.reason for f in exc.value.faces] == ["outside the selection"]
    with pytest.raises(UsageError, match=r"the size of the image \(512x512\), got 400x512"):
        smilecore.smile(astronaut, selection=np.zeros((512, 400), np.uint8), model=fixture_models["shift"])


def test_a_selection_weighs_each_of_two_overlapping_faces_once(astronaut):
    """Two faces whose regions overlap: before, the second face's selection blend took the first face's edit,
    already weighted, and weighted it again (a quarter of the edit where half was asked for)."""
    strip = astronaut[:, 180:260]
    two = np.ascontiguousarray(np.concatenate([astronaut[:, :180], strip, strip, astronaut[:, 260:]], axis=1))
    full = smilecore.smile(two, strength=3)
    (a0, _, a1, _), (b0, _, b1, _) = sorted(f.region for f in full.faces)
    assert all(f.edited for f in full.faces) and b0 < a1  # (the regions overlap)
    half = smilecore.smile(two, strength=3, selection=np.full(two.shape[:2], 0.5, np.float32))
    asked = np.rint(two + 0.5 * (full.image.astype(np.float32) - two))
    off = np.abs(half.image.astype(np.float32) - asked).max(axis=-1)
    assert off.max() <= 1, (off.max(), np.argwhere(off > 1)[:3])
    assert np.allclose(half.mask, 0.5 * full.mask, atol=1e-6)
