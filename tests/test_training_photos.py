"""The photo composites of the evaluation (training.photos): a crop's source photo found again, the
edit made at the photo's own resolution as ``smile`` makes it, and the photo as ``smile`` saves it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")


def _prepared(tmp_path: Path, photo: np.ndarray, name: str = "astro.jpg") -> tuple[np.ndarray, dict, Path]:
    """A one-face "prepared" cache of ``photo`` saved as a JPEG under ``tmp_path/data``: its crop cut as
    ``prepare`` cuts one (from the decoded file, aligned on the engine's five points) and its index row."""
    import smilecore
    from smilecore.align import CROP_SIZE, align_face, apply_affine, extract_crop
    from smilecore.decode import load_image
    from smilecore.pixels import from_any, to_rgb8

    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    Image.fromarray(photo).save(data / name, quality=80)
    rgb = to_rgb8(from_any(load_image(data / name)[0]).array)
    face = smilecore.detect_faces(rgb)[0]
    al = align_face(face.landmarks, CROP_SIZE)
    crops = extract_crop(rgb, al)[None]
    index = {"split": np.array(["val"]), "file": np.array([name]),
             "lm5": apply_affine(al.matrix, face.landmarks)[None].astype(np.float32)}
    return crops, index, data


def test_source_photos_find_a_crops_photo_and_refuse_anything_else(tmp_path, astronaut):
    from training.photos import SourcePhotos

    crops, index, data = _prepared(tmp_path, astronaut)
    photos = SourcePhotos(crops, index, data)
    src = photos.find(crops[0])
    assert src.row == 0 and src.info.format == "JPEG" and src.pixels.array.shape == (512, 512, 3)
    from smilecore.align import extract_crop

    assert np.array_equal(extract_crop(src.pixels.array, src.alignment), crops[0])
    with pytest.raises(ValueError, match="none of the prepared faces"):
        photos.find(crops[0] // 2)
    # the photo changed since it was prepared (here: moved by 6 pixels): its crop is not the stored one
    Image.fromarray(np.roll(astronaut, 6, axis=1)).save(data / "astro.jpg", quality=80)
    with pytest.raises(ValueError, match="run prepare again"):
        SourcePhotos(crops, index, data).find(crops[0])


@pytest.mark.parametrize("grey", [False, True], ids=["colour", "grey"])
def test_the_photo_composites_are_what_smile_makes_and_writes(tmp_path, astronaut, grey):
    """``photo`` is ``smilecore.smile`` on the source photo, cut again; ``saved`` is the file the
    ``smile`` command writes, read back and cut again: equal to the byte, for a colour JPEG and for a
    grey one (which the engine edits, and ``smile`` writes, as grey)."""
    from click.testing import CliRunner

    import smilecore
    from smile_cli.main import cli
    from smilecore.align import extract_crop
    from smilecore.decode import load_image
    from smilecore.registry import resolve_model
    from training.evaluate import onnx_editor
    from training.photos import SourcePhotos
    from training.prepare import read_rgb

    crops, index, data = _prepared(tmp_path, cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY) if grey else astronaut)
    photos = SourcePhotos(crops, index, data)
    al = photos.find(crops[0]).alignment
    assert photos.find(crops[0]).pixels.array.shape[2] == (1 if grey else 3)
    photo_edit, _ = onnx_editor(resolve_model(None), "photo", photos)
    saved_edit, _ = onnx_editor(resolve_model(None), "saved", photos)

    got = photo_edit(crops, 2.0)[0]
    want = extract_crop(np.asarray(smilecore.smile(load_image(data / "astro.jpg")[0], 2.0).image.convert("RGB")), al)
    assert np.array_equal(got, want)
    assert np.abs(got.astype(int) - crops[0]).max() > 40  # she smiles

    out = tmp_path / "out.jpg"
    r = CliRunner().invoke(cli, [str(data / "astro.jpg"), "--strength", "2", "-o", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert Image.open(out).mode == ("L" if grey else "RGB")
    written = extract_crop(read_rgb(out)[0], al)
    assert np.array_equal(saved_edit(crops, 2.0)[0], written)
    assert not np.array_equal(written, got)  # compressed once more
    assert np.array_equal(photo_edit(crops, 0.0), crops)  # λ = 0: the crop as it was


def test_the_photo_composite_paints_at_the_photos_resolution(tmp_path, astronaut, monkeypatch):
    """A face smaller in its photo than in the crop: the crop composite paints the mouth at the crop's
    resolution, the photo composite at the photo's, so its painted mouth holds less fine detail; and
    away from what the edit changed both leave the crop as it was. (She shows her own teeth, which the
    engine keeps and never paints over: the teeth rule is turned off to give the paint somewhere to be.)"""
    from smilecore import facemesh
    from smilecore.model import SmileModel
    from smilecore.registry import resolve_model
    from smilecore.strength import face_strengths
    from training.evaluate import onnx_editor
    from training.photos import SourcePhotos

    monkeypatch.setattr(facemesh, "painted_mask", lambda mask, teeth: np.asarray(mask, np.float32))
    small = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)  # her face: about half the crop's size
    crops, index, data = _prepared(tmp_path, small, "small.jpg")
    photos = SourcePhotos(crops, index, data)
    assert photos.find(crops[0]).alignment.scale > 1.5
    lams = face_strengths(2.0, facemesh.network().read(crops).level)
    s = crops.shape[1]
    paint = SmileModel(resolve_model(None)).run(crops, lams).mask[0].reshape(s, s) > 0.5
    paint = cv2.erode(paint.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0  # inside the paint, off its edge
    assert paint.sum() > 100
    engine, _ = onnx_editor(resolve_model(None))
    photo, _ = onnx_editor(resolve_model(None), "photo", photos)
    a, b = engine(crops, 2.0)[0], photo(crops, 2.0)[0]
    lap = [float(cv2.Laplacian(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).astype(np.float32), cv2.CV_32F)[paint].var()) for x in (a, b)]
    assert lap[1] < 0.75 * lap[0]  # about 0.63 here
    changed = (np.abs(a.astype(int) - crops[0]).max(-1) > 0) | (np.abs(b.astype(int) - crops[0]).max(-1) > 0)
    assert changed.mean() < 0.5
    near = cv2.dilate((np.abs(a.astype(int) - crops[0]).max(-1) > 0).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    assert np.array_equal(b[~near], crops[0][~near])


def test_the_photo_table_puts_each_composite_beside_the_engines():
    from training.evaluate import photo_realism_markdown

    def res(auc):
        return {"per_lambda": {"1": {"auc": auc, "sd": 0.01, "by_source": {"utkface": auc + 0.1},
                                     "auc_gabor": 0.7, "auc_pixels": 0.6, "auc_spectrum": auc - 0.05}}}

    table = photo_realism_markdown({"photo": res(0.75), "saved": res(0.74), "markdown": "old"}, res(0.77))
    lines = table.splitlines()
    assert lines[2].startswith("| composite | λ | realism AUC | ± sd (folds) | utkface only | Gabor judge |")
    assert lines[4] == "| engine (the crop as the photo) | +1 | 0.770 | 0.010 | 0.870 | 0.700 | 0.600 | 0.720 |"
    assert lines[5].startswith("| photo | +1 | 0.750 |") and lines[6].startswith("| saved | +1 | 0.740 |")
    assert len(lines) == 7


def test_the_config_names_only_photo_composites_it_has():
    import dataclasses

    from training.config import load_config

    ev = load_config(None).evaluate
    assert ev.photo_composites == ("photo", "saved")
    with pytest.raises(ValueError, match=r"photo_composites: unknown \['engine'\]"):
        dataclasses.replace(ev, photo_composites=("photo", "engine"))
    assert dataclasses.replace(ev, photo_composites=()).photo_composites == ()
