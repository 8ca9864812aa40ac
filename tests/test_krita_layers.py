"""The Krita plug-in where the layer stack or the canvas matters, inside the real Krita 5 (headless).

A visible layer inside a hidden group is refused like a hidden layer (its Smile layer would go
into the hidden group and change nothing that shows); the new layers are named after their
source ("Face smile", "Face smile 2"), so several Applies leave a readable stack; a clone layer
of the source is named in the status with how to point it at the new layer (Krita 5.1's
scripting cannot); a face cut by the canvas edge is edited whole, its part beyond the canvas
too, so no seam shows where the edge was; the image closed while the engine works gives one line.

``tests/hosts/krita/runner_layers.py`` does the work inside ``kritarunner`` with the fixture
model of tests/test_krita_host.py (a 3-px translation).
"""
from __future__ import annotations

import numpy as np
import pytest

from test_krita_host import krita_setup, recorded_case, run_kritarunner  # noqa: F401  (krita_setup is a fixture)
from test_krita_precision import CHANNELS, DTYPES, _bitwise_changed, _near

pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def layers(krita_setup):  # noqa: F811
    out, results = run_kritarunner(krita_setup, "runner_layers", "layers-out")
    return {"out": out, "results": results}


def _case(layers, name: str) -> dict:
    return recorded_case(layers["results"], name)


def test_layer_in_hidden_group_refused(layers):
    case = _case(layers, "layers_hidden_group")
    assert [1, "Group", "grouplayer", False] in case["tree_before"] and [2, "Face", "paintlayer", True] in case["tree_before"]
    assert case["request_id"] is None and case["tree"] == case["tree_before"] and not case["added"]
    assert case["statuses"] == [["error", "'Face' is inside the hidden group 'Group': show the group "
                                          "(its eye in the Layers docker), then Apply"]]


@pytest.mark.parametrize("name,words", [
    ("layers_transparent_group", "'Face' is inside the group 'Group' at opacity 0 %, so nothing of it shows: "
                                 "raise the group's opacity (Layer → Properties…), then Apply"),
    ("layers_transparent", "'Face' is at opacity 0 %, so nothing of it shows: raise its opacity "
                           "(Layer → Properties…), then Apply"),
    ("layers_unseen_groups", "'Face' is inside the groups 'Outer' (at opacity 0 %) and 'Group' (hidden), so nothing "
                             "of it shows: show them (their eye in the Layers docker) and raise their opacity "
                             "(Layer → Properties…), then Apply"),
    ("layers_unseen_group", "'Face' is inside the group 'Group' (hidden and at opacity 0 %), so nothing of it shows: "
                            "show it (its eye in the Layers docker) and raise its opacity (Layer → Properties…), "
                            "then Apply")])
def test_layer_that_shows_nothing_refused(layers, name, words):
    """A layer at opacity 0, or in a group at opacity 0: its Smile layer would show nothing either;
    groups that show nothing for several reasons, or several such groups, are all named at once
    (before: only the outermost group, and only one reason: a second refusal after fixing it)."""
    case = _case(layers, name)
    assert case["request_id"] is None and not case["added"] and case["statuses"] == [["error", words]], case


def test_result_layers_named_after_their_source(layers):
    steps = _case(layers, "layers_names")["steps"]
    assert [s["added"] for s in steps] == [["Face smile"], ["Face smile 2"], ["Face smile 2 smile"],
                                           ["Portrait at half smile"]], [s["statuses"] for s in steps]
    for step in steps:
        kind, message = step["statuses"][-1]
        assert kind == "done" and message.startswith(f"added layer '{step['added'][0]}'"), step["statuses"]
    # each right above its source (Krita lists the stack bottom up)
    assert [row[1] for row in steps[2]["tree"]] == ["Background", "Face", "Face smile 2", "Face smile 2 smile", "Face smile"]
    assert [row[1] for row in steps[3]["tree"]][:3] == ["Background", "Portrait at half", "Portrait at half smile"]
    assert "the source 'Portrait at half' is hidden under it" in steps[3]["statuses"][-1][1]


def test_clone_of_the_source_named_in_the_status(layers):
    case = _case(layers, "layers_clone")
    assert [row[1:] for row in case["tree"]] == [["Background", "paintlayer", True], ["Face", "paintlayer", False],
                                                 ["Face smile", "paintlayer", True], ["Face clone", "clonelayer", True]]
    kind, message = case["statuses"][-1]
    assert kind == "done" and "\n" not in message
    assert message.endswith("; the clone layer 'Face clone' still shows what it copies without the smile: if it copies "
                            "'Face', right-click it in the Layers docker, Set Copy From…, and pick 'Face smile'"), message


@pytest.mark.parametrize("name", ["layers_off_right", "layers_off_left", "layers_gray"])
def test_face_cut_by_the_canvas_edge_edited_whole(layers, name):
    """The face crosses the canvas edge: it is edited on both sides of it (no seam where the edge
    is), the layer's pixels beyond the canvas are all there, nothing away from the face changes
    (layers_gray: a 16-bit grayscale layer at 50 % opacity, replaced by its duplicate and hidden)."""
    case = _case(layers, name)
    assert case["statuses"][-1][0] == "done", case["statuses"]
    x, y, w, h = case["source"]["rect"]
    model, depth = case["space"][:2]
    source, result = (np.fromfile(layers["out"] / case[which]["file"], DTYPES[depth]).reshape(h, w, CHANNELS[model])
                      for which in ("source", "result"))
    changed = _bitwise_changed(source, result)
    origin = (min(0, x), min(0, y))  # where the job (canvas and layer together) starts in the image
    (box,) = [f["box"] for f in case["reply"]["faces"] if f.get("edited")]
    box = [box[0] + origin[0], box[1] + origin[1], box[2] + origin[0], box[3] + origin[1]]
    assert box[0] < 0 < box[2] or box[0] < 512 < box[2], f"the face {box} does not cross the canvas edge"
    assert not (changed & ~_near(changed.shape, box, origin=(x, y))).any(), "pixels away from the face changed"
    edge = -x if x < 0 else 512 - x  # the first column (of the dump) beyond the canvas / on it
    inside, outside = (changed[:, edge], changed[:, edge - 1]) if x < 0 else (changed[:, edge - 1], changed[:, edge])
    assert inside.sum() > 50 and outside.sum() > 0.7 * inside.sum(), \
        f"a seam at the canvas edge: {inside.sum()} pixels changed in the column on the canvas, {outside.sum()} beyond it"
    beyond = changed[:, :edge] if x < 0 else changed[:, edge:]
    assert beyond.sum() > 500, f"only {beyond.sum()} pixels of the face beyond the canvas changed"
    assert (result[..., -1] == source[..., -1]).all()
    if name == "layers_gray":
        assert case["space"][:2] == ["GRAYA", "U16"] and case["result_opacity"] == 128
        assert [row[1:] for row in case["tree"]] == [["Background", "paintlayer", False],
                                                     ["Background smile", "paintlayer", True]], case["tree"]


def test_image_closed_during_apply(layers):
    case = _case(layers, "layers_closed")
    assert case["reply"]["ok"] and case["added"] == 0 and case["documents_open"] == 0, case
    kind, message = case["statuses"][-1]
    assert kind == "error" and "closed" in message and "nothing was added" in message and "\n" not in message, message


def test_layer_far_beyond_the_canvas_sent_in_part(layers):
    """A layer moved 900 px below the 512-px canvas (the face with it): Apply sends the canvas and
    at most half a canvas around it (not the whole layer: Apply stays as fast as for a few
    canvases), finds no face there, adds nothing."""
    case = _case(layers, "layers_off_far")
    assert case["source"]["rect"] == [-60, 900, 512, 512] and case["sent"] == [-60, 0, 572, 768], case["sent"]
    assert case["statuses"][-1][0] == "no_face" and not case["added"], case["statuses"]


def test_layer_moved_while_the_engine_works(layers):
    """The layer moved back onto the canvas while the engine works on its face beyond the edge:
    nothing is added (before: the smiled face was pasted where the face no longer is)."""
    case = _case(layers, "layers_moved_during")
    assert case["reply"]["ok"] and not case["added"], case["statuses"]
    assert [row[1] for row in case["tree"]] == ["Background", "Face"], case["tree"]
    assert case["statuses"][-1] == ["error", "the layer 'Face' was moved while Smile worked on it, so the face is no "
                                             "longer where Smile edited it; nothing was added: Apply again"]


def test_layer_erased_beyond_the_canvas_while_the_engine_works(layers):
    """The layer's part beyond the canvas erased (and a red stripe painted at the canvas's left
    edge) while the engine works: there, the new layer holds the face's changed pixels and nothing
    else (before: red pixels of the next rows' stripe, read past the layer's new bounds)."""
    case, plain = _case(layers, "layers_erased_during"), _case(layers, "layers_off_right")
    assert case["statuses"][-1][0] == "done" and case["added"] == ["Face smile"], case["statuses"]
    read = (lambda c, which: np.fromfile(layers["out"] / c[which]["file"], np.uint8).reshape(512, 512, 4))
    source, smiled, result = read(plain, "source"), read(plain, "result"), read(case, "result")
    changed = (source != smiled).any(axis=-1)
    edge = 512 - 270  # the first column of the dumps beyond the canvas
    expected = np.where(changed[..., None], smiled, 0)[:, edge:]
    assert changed[:, edge:].sum() > 500
    assert (result[:, edge:] == expected).all(), \
        f"{(result[:, edge:] != expected).any(axis=-1).sum()} pixels beyond the canvas are not the face's changes"
    assert (result[:, :edge] == smiled[:, :edge]).all(), "the layer on the canvas differs from Apply without the erasing"


def test_long_canvas_sends_at_most_four_canvases(layers):
    """A 512×48 canvas over a 512×512 layer: Apply sends a band 55 px wide around the canvas
    (at most four canvases' area), not half the canvas's longer side (512×454 pixels, 9.5 canvases)."""
    case = _case(layers, "layers_long_canvas")
    assert case["canvas"] == [512, 48] and case["layer"] == [0, -150, 512, 512], case
    x, y, w, h = case["sent"]
    assert w * h <= 4 * 512 * 48 and case["sent"] == [0, -55, 512, 158], case["sent"]
    assert case["request_id"] is not None and case["statuses"][-1][0] != "error", case["statuses"]


def test_largest_face_is_one_on_the_canvas(layers):
    """Largest face, with a larger face beyond the canvas's edge in the band Apply sends: the
    face on the canvas is edited, and the preview shows it (before: the unseen larger face was
    edited: '1 face(s) edited' and nothing on the canvas changed)."""
    case = _case(layers, "layers_largest")
    assert case["sent"][2] > 420 and case["statuses"][-1][0] == "done", (case["sent"], case["statuses"])
    for reply in (case["reply"], case["preview_reply"]):
        edited = [f["box"] for f in reply["faces"] if f.get("edited")]
        assert len(reply["faces"]) == 2 and len(edited) == 1, reply["faces"]
        middle = case["sent"][0] + (edited[0][0] + edited[0][2]) / 2
        assert middle < 420, f"the face edited ({edited[0]}) is beyond the 420-px canvas"
    source, result = (np.fromfile(layers["out"] / case[which]["file"], np.uint8).reshape(512, 420, 4)
                      for which in ("source", "result"))
    assert (source != result).any(axis=-1).sum() > 200, "the face on the canvas did not change"


def test_face_cut_by_the_edge_sent_with_its_surroundings(layers):
    """Apply and the preview before it send the same part of the image, so they find the same
    face (before, the preview saw only the canvas: no face found, while Apply smiled it)."""
    right, left = _case(layers, "layers_off_right"), _case(layers, "layers_off_left")
    assert right["sent"] == [0, 0, 768, 512] and left["sent"] == [-220, -40, 732, 552], (right["sent"], left["sent"])
    for case in (right, left):
        preview = case["preview"]
        assert preview["ok"] and preview["rect"] == case["sent"], preview
        assert preview["status"][1].endswith(": 1 face(s) found"), preview["status"]
