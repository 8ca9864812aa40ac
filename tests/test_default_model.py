"""The shipped default model: registered, checksummed, contract-valid, and it smiles the sample."""
from __future__ import annotations

import json

import numpy as np
import pytest

import smilecore
from smilecore import registry
from smilecore.model import SmileModel


def test_default_model_is_bundled_and_verified():
    name = registry.default_model_name()
    info = registry.get_info(name)
    assert info.bundled and info.license == "research-non-commercial"
    path = registry.resolve_model(None)
    assert path.is_file() and path.stat().st_size == info.size
    assert registry.sha256_of(path) == info.sha256
    assert (path.parent / "MODEL_CARD.md").read_text().count("research") >= 1


def test_default_model_contract_and_identity_at_zero(astronaut):
    model = SmileModel(registry.resolve_model(None))
    assert model.size == 256 and model.strength_range == (-2.0, 4.0)
    assert model.license == "research-non-commercial"
    crops = np.stack([np.asarray(astronaut[:256, 128:384])] * 2)
    out = model.run(crops, np.array([0.0, 2.0], np.float32))
    assert out.flow.shape == (2, 2, 256, 256) and out.mask.shape == (2, 1, 256, 256)
    assert np.abs(out.flow[0]).max() == 0.0 and np.abs(out.mask[0]).max() == 0.0
    assert np.abs(out.flow[1]).max() > 1.0  # λ = 2 moves pixels


def test_default_model_draws_the_mouth_with_its_mouth_network_not_a_drawing():
    """Issue 15: the shipped model's mouth comes from the network learned on real mouths; the smile
    network's drawn mouth (its TeethAtlas, a picture sampled by GridSample) is not in the file."""
    onnx = pytest.importorskip("onnx")
    path = registry.resolve_model(None)
    assert "smile.mouth" in SmileModel(path).meta
    graph = onnx.load(str(path)).graph
    samplers = [n for n in graph.node if n.op_type == "GridSample"]
    # the mouth network samples the warped face around the mouth, the transported shade the warped
    # lower face (training/transport.py): both read the face input, neither a picture in the file
    assert samplers and all(n.name.startswith(("mouth/", "transport/")) for n in samplers)
    assert any(n.name.startswith("mouth/") for n in samplers)
    pictures = {t.name for t in graph.initializer if len(t.dims) == 4 and t.dims[1] == 3}
    assert not any(n.input[0] in pictures or n.input[0].replace("_fp16", "") in pictures for n in samplers)


def test_default_model_shades_each_face_by_the_transport_and_not_at_zero(astronaut):
    """Issue 15 item 3: the shipped model's shade has a per-face part (training/transport.py): the
    same face lit from one side gets another shade where neither mouth is painted (a mean field
    alone, ``field · amount · (1 − mask)``, would give both the same there), and λ = 0 none."""
    path = registry.resolve_model(None)
    model = SmileModel(path)
    assert "smile.transport" in model.meta
    face = np.asarray(astronaut[:256, 128:384])
    side = np.linspace(0.5, 1.0, 256, dtype=np.float32)[None, :, None]
    relit = np.clip(face * side + 0.5, 0, 255).astype(np.uint8)
    out = model.run(np.stack([face, relit, face]), np.array([1.0, 1.0, 0.0], np.float32))
    assert np.abs(out.shade[2]).max() == 0.0
    unpainted = (out.mask[0, 0] == 0) & (out.mask[1, 0] == 0)
    assert np.abs(out.shade[0, 0] - out.shade[1, 0])[unpainted].max() > 0.01


def test_default_model_paints_a_grey_mouth_into_a_grey_photo(astronaut):
    """A black-and-white portrait (stored as RGB) gets a grey mouth, not a tinted one; a colour
    photo keeps the mouth network's colours."""
    from smilecore.align import align_face, extract_crop

    model = SmileModel(registry.resolve_model(None))
    face = smilecore.detect_faces(astronaut)[0]
    crop = extract_crop(astronaut, align_face(face.landmarks, model.size))
    grey = np.repeat(np.rint(crop @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)[..., None], 3, axis=2)
    for image, tinted in ((grey, False), (crop, True)):
        out = model.run(image[None], 2.0)
        painted = out.mask[0, 0] > 0.05
        assert painted.sum() > 200  # the mouth network painted the opening
        spread = np.abs(out.rgb[0, 0] - out.rgb[0, 2])[painted].max()
        assert (spread > 0.02) == tinted, spread


def test_default_model_edits_only_the_face(astronaut):
    res = smilecore.smile(astronaut, strength=1.5)
    out = np.asarray(res.image)
    assert out.shape == astronaut.shape
    face = res.faces[0]
    x0, y0, x1, y1 = face.box
    diff = np.abs(out.astype(int) - astronaut.astype(int)).max(axis=2)
    assert diff[y0:y1, x0:x1].max() > 20  # the mouth moved
    changed = np.argwhere(diff > 0)
    h = y1 - y0
    # nothing changes far from the face
    assert changed[:, 0].min() >= y0 - h and changed[:, 0].max() <= y1 + h


def test_register_bundled_replaces_the_old_default(tmp_path):
    training_export = pytest.importorskip("training.export")
    models = tmp_path / "models"
    models.mkdir()
    (models / "smile-mobileunet-0.9.onnx").write_bytes(b"old")
    (models / "registry.json").write_text(json.dumps({"default": "x", "models": [
        {"name": "smile-mobileunet", "version": "0.9", "file": "smile-mobileunet-0.9.onnx", "sha256": "0",
         "size": 3, "license": "l", "bundled": True},
        {"name": "other", "version": "1", "file": "o.onnx", "sha256": "1", "size": 1, "license": "l", "url": "http://x"}]}))
    onnx_file, card = tmp_path / "new.onnx", tmp_path / "new.md"
    onnx_file.write_bytes(b"new model")
    card.write_text("# card")
    dest = training_export.register_bundled(onnx_file, card, "smile-mobileunet", "1.0", "abc", 9, models_dir=models)
    reg = json.loads((models / "registry.json").read_text())
    assert dest.read_bytes() == b"new model" and not (models / "smile-mobileunet-0.9.onnx").exists()
    assert reg["default"] == "smile-mobileunet"
    assert [m["name"] for m in reg["models"]] == ["smile-mobileunet", "other"]
    assert reg["models"][0]["sha256"] == "abc" and reg["models"][0]["bundled"] is True
    assert (models / "MODEL_CARD.md").read_text() == "# card"
