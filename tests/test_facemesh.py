"""The face's own outline bounds every edit: the face mesh, the region it gives, and the photo."""
import numpy as np
import pytest

import smilecore
import smilecore.pipeline as pipeline
from smilecore import facemesh
from smilecore.align import CROP_SIZE, align_face, extract_crop, template_points
from smilecore.errors import ModelError

S = CROP_SIZE


@pytest.fixture(scope="module")
def sample_crop(astronaut):
    face = smilecore.detect_faces(astronaut)[0]
    al = align_face(face.landmarks, S)
    return al, extract_crop(astronaut, al)


def test_mesh_places_the_eyes_on_the_template_and_the_oval_around_the_face(sample_crop):
    _, crop = sample_crop
    pts = facemesh.network().landmarks(crop[None])[0]
    assert pts.shape == (468, 2)
    t = template_points(S)
    # mesh eye corners (subject's right: 33 outer, 133 inner; left: 263 outer, 362 inner) against
    # the template's dlib points the crop was aligned to (image-right eye first)
    mesh_eyes = pts[[263, 362, 33, 133]]
    assert np.abs(mesh_eyes - t[:4]).max() < 6.0, mesh_eyes - t[:4]
    oval = facemesh.network().read(crop[None])[0][0]
    assert oval.shape == (len(facemesh.FACE_OVAL), 2)
    chin, forehead = oval[facemesh.FACE_OVAL.index(152)], oval[0]
    assert t[4, 1] + 0.15 * S < chin[1] < S  # the chin below the nose, inside the crop
    assert 0 <= forehead[1] < t[0, 1]  # the top of the oval above the eyes
    assert oval[:, 0].min() < t[2, 0] and oval[:, 0].max() > t[0, 0]  # wider than the eyes


def test_region_is_zero_outside_the_outline_and_one_inside():
    sq = np.array([[60.0, 60.0], [200.0, 60.0], [200.0, 200.0], [60.0, 200.0]])
    r = facemesh.edit_region(sq, S)
    assert r.dtype == np.float32 and r.shape == (S, S)
    assert r[130, 130] == 1.0
    assert r[:60].max() == 0 and r[201:].max() == 0 and r[:, :60].max() == 0 and r[:, 201:].max() == 0
    assert 0 < r[61, 130] < 0.2  # the soft border rises inside the outline
    assert np.all(np.diff(r[61:130, 130]) >= 0)


def test_region_covers_where_the_flow_moves_the_outline():
    sq = np.array([[60.0, 60.0], [200.0, 60.0], [200.0, 200.0], [60.0, 200.0]])
    flow = np.zeros((2, S, S), np.float32)
    flow[1] = -20.0  # backward flow: every output pixel shows the input 20 px above it (all moves down)
    r = facemesh.edit_region(sq, S, flow)
    assert r[210, 130] > 0.5 and r[225, 130] == 0  # the moved bottom edge (220) is covered
    assert r[:60].max() == 0  # and nothing beyond either outline


def test_mesh_file_is_checked(tmp_path):
    bad = tmp_path / "facemesh.onnx"
    bad.write_bytes((facemesh.MODELS_DIR / facemesh.MESH_FILE).read_bytes()[:-1] + b"\0")
    with pytest.raises(ModelError, match="face landmark model .* fails its checksum"):
        facemesh.FaceMesh(bad)
    with pytest.raises(ModelError, match="is missing"):
        facemesh.FaceMesh(tmp_path / "nothing.onnx")


@pytest.mark.parametrize("strength", [1.0, 2.0, 4.0])
def test_nothing_outside_the_faces_outline_changes(astronaut, sample_crop, strength):
    """Every changed pixel of the sample lies inside the face's outline (or its moved chin), so the
    collar and the neck below the chin stay bit-identical."""
    res = smilecore.smile(astronaut, strength=strength)
    out = np.asarray(res.image)
    changed = np.abs(out.astype(int) - astronaut.astype(int)).max(axis=-1) > 0
    assert changed.sum() > 1000
    al, crop = sample_crop
    oval = facemesh.network().read(crop[None])[0][0]
    # the region the engine used (the same crop and network outputs), grown by one crop pixel
    net = pipeline.load_model().run(crop[None], strength)
    region = facemesh.edit_region(oval, S, net.flow[0]) > 0
    grown = np.zeros_like(region)
    grown[1:-1, 1:-1] = region[:-2, 1:-1] | region[2:, 1:-1] | region[1:-1, :-2] | region[1:-1, 2:] | region[1:-1, 1:-1]
    ys, xs = np.nonzero(changed)
    u = np.rint(al.matrix[0, 0] * xs + al.matrix[0, 1] * ys + al.matrix[0, 2]).astype(int)
    v = np.rint(al.matrix[1, 0] * xs + al.matrix[1, 1] * ys + al.matrix[1, 2]).astype(int)
    inside = (u >= 0) & (u < S) & (v >= 0) & (v < S)
    assert inside.all()
    assert grown[v, u].all(), f"{(~grown[v, u]).sum()} changed pixels outside the face's outline"
    # nothing below the lowest point of the outline (moved by the smile)
    chin_v = np.nonzero(region.any(axis=1))[0].max()
    assert v.max() <= chin_v + 1


def test_video_frames_change_only_inside_the_faces_outline(astronaut, sample_crop):
    """The video path composites with the same outline: a frame's changes stay inside it, also on
    the in-between frame that reuses the last network output."""
    from smilecore.video_edit import FaceEditor
    from smilecore.video_track import Track

    face = smilecore.detect_faces(astronaut)[0]
    tr = Track(index=0, ref=face.landmarks.copy(), size=float(face.size), score=face.score, first_frame=0, last_frame=0)
    tr.smoothed = face.landmarks.copy()
    editor = FaceEditor(pipeline.load_model(), net_every=2)
    al, crop = sample_crop
    for frame in range(2):  # a fresh network run, then a reused output
        written = []
        n = editor.edit([(tr, 2.0)], lambda b: astronaut[b[1]:b[3], b[0]:b[2]].copy(),
                        lambda b, old, new: written.append((b, old, new)), astronaut.shape[:2])
        assert n == 1 and len(written) == 1
        (x0, y0, _, _), old, new = written[0]
        ys, xs = np.nonzero(np.abs(new.astype(int) - old.astype(int)).max(axis=-1) > 0)
        assert len(ys) > 1000
        xs, ys = xs + x0, ys + y0
        area = tr.net_state["area"] > 0
        u = np.rint(al.matrix[0, 0] * xs + al.matrix[0, 1] * ys + al.matrix[0, 2]).astype(int)
        v = np.rint(al.matrix[1, 0] * xs + al.matrix[1, 1] * ys + al.matrix[1, 2]).astype(int)
        grown = area | np.roll(area, 1, 0) | np.roll(area, -1, 0) | np.roll(area, 1, 1) | np.roll(area, -1, 1)
        assert grown[v, u].all(), f"frame {frame}: {(~grown[v, u]).sum()} changed pixels outside the outline"


def test_own_teeth_are_kept_when_shown_and_not_otherwise(sample_crop):
    _, crop = sample_crop
    pts = facemesh.network().landmarks(crop[None])[0]
    assert facemesh.own_teeth(crop, pts) == pytest.approx(1.0)  # the astronaut smiles with her teeth
    closed = pts.copy()
    closed[facemesh.LIP_MIDDLE[1]] = closed[facemesh.LIP_MIDDLE[0]]  # lips together
    assert facemesh.own_teeth(crop, closed) == 0.0
    dark = crop.copy()  # an open mouth with nothing bright inside it (no teeth)
    import cv2

    cv2.fillPoly(dark, [np.rint(pts[list(facemesh.INNER_LIPS)]).astype(np.int32)], (40, 20, 20))
    assert facemesh.own_teeth(dark, pts) == 0.0


def test_a_face_showing_its_teeth_keeps_them(astronaut, monkeypatch):
    """The astronaut already shows her teeth: nothing is painted, the warp widens her own."""
    from smilecore.model import ModelOutput, SmileModel

    model = pipeline.load_model()
    got = np.asarray(smilecore.smile(astronaut, strength=2.0, model=model).image)
    run = SmileModel.run

    def unpainted(self, crops, strength):
        o = run(self, crops, strength)
        return ModelOutput(rgb=o.rgb, mask=np.zeros_like(o.mask), flow=o.flow, shade=o.shade)

    monkeypatch.setattr(SmileModel, "run", unpainted)
    want = np.asarray(smilecore.smile(astronaut, strength=2.0, model=model).image)
    assert np.array_equal(got, want)
    assert not np.array_equal(got, astronaut)


def test_the_shipped_mesh_computes_prelu_as_the_tflite_graph_does(sample_crop):
    """The converter writes each PReLU as two depthwise convolutions (faster in ONNX Runtime); put
    back as ONNX's own ``PRelu`` (the benchmark's baseline), the landmarks are the same."""
    onnx = pytest.importorskip("onnx")
    import onnxruntime as ort

    from benchmarks.face import with_prelu
    from smilecore.blazeface import MODELS_DIR

    shipped = onnx.load(str(MODELS_DIR / facemesh.MESH_FILE))
    baseline = with_prelu(shipped)
    ops = [n.op_type for n in baseline.graph.node]
    assert ops.count("PRelu") == 23 and "Relu" not in ops and [n.op_type for n in shipped.graph.node].count("PRelu") == 0
    import cv2

    x = {"input": cv2.resize(sample_crop[1], (192, 192), interpolation=cv2.INTER_AREA)[None].astype(np.float32) / 255}
    a = ort.InferenceSession(shipped.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, x)[0]
    b = ort.InferenceSession(baseline.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, x)[0]
    assert a.shape == (1, 1404) and np.ptp(a) > 50  # landmarks spread over the picture
    assert np.abs(a - b).max() < 1e-3
