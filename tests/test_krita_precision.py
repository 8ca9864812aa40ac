"""The Krita plug-in on documents that are not 8-bit RGBA, inside the real Krita 5 (headless).

16-bit integer, 16- and 32-bit float (Krita's default profiles for them are linear), grayscale,
a layer moved partly off the canvas, a selection: the new layer differs from the source only
around the face, and there at the right tone (compared with the same portrait smiled as 8-bit
sRGB); outside the face every value is kept bit for bit, float values above 1 and below 0
included.  CMYK, Lab, XYZ and YCbCr documents, masks and a layer in another colour space than
its image are refused with one line saying what to do; a failure leaves the document as it was.
Layers a copy stacked on them would change (masks, a blur filter mask, half opacity, Multiply,
translucent pixels, clipped, a group with a filter mask) get a Smile layer that replaces
them (they are hidden): the merged image is exactly the one the same change made in place on the
source gives (a local selection mask alone leaves a layer plain); paint added while Apply runs
stays; a layer deleted, or the image converted or resized meanwhile, gets one line of error and
nothing is added; a pass-through group, a hidden layer, a filter and a fill layer are refused.

``tests/hosts/krita/runner_precision.py`` does the work inside ``kritarunner``; the engine is
this environment's with the fixture model of tests/test_krita_host.py (a 3-px translation).
The pure-Python merge (plugins/common/smile_merge.py, shared with GIMP) is also tested here without Krita.
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

from test_krita_host import krita_setup, recorded_case, run_kritarunner  # noqa: F401  (krita_setup is a fixture)

HERE = Path(__file__).parent
MERGE_PY = HERE.parent / "plugins" / "common" / "smile_merge.py"
DTYPES = {"U8": np.uint8, "U16": np.dtype("<u2"), "F16": np.dtype("<f2"), "F32": np.dtype("<f4")}
CHANNELS = {"RGBA": 4, "GRAYA": 2}
PAD = 0.6  # the change mask is feathered beyond the face box (as in test_krita_host)


def _merge_module():
    spec = importlib.util.spec_from_file_location("smile_merge", MERGE_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- without Krita
def test_merge_takes_only_changed_pixels():
    merge = _merge_module()
    rng = np.random.default_rng(0)
    before = rng.integers(0, 65535, (5, 7, 4), dtype=np.uint16)
    after = before.copy()
    after[1, 2:5, 0] += 1
    after[3, 6, 3] ^= 0x100
    after[4, 0] += 7
    runs = merge.changed_runs(before.tobytes(), after.tobytes(), 7, 5, 8)
    assert runs == [(1, 2, 5), (3, 6, 7), (4, 0, 1)]
    assert merge.bounding_rect(runs) == (0, 1, 7, 4)
    assert merge.changed_runs(before.tobytes(), before.tobytes(), 7, 5, 8) == []
    # the layer's own float pixels, with values no 16-bit image can hold, replaced only where changed
    own = rng.normal(0, 5, (4, 7, 4)).astype("<f4")
    back = np.full((4, 7, 4), 0.5, "<f4")
    merged = np.frombuffer(merge.merge_runs(own.tobytes(), back.tobytes(), 7, 4, 16, runs, origin=(0, 1)),
                           "<f4").reshape(4, 7, 4)
    changed = np.zeros((4, 7), bool)
    changed[0, 2:5] = changed[2, 6] = changed[3, 0] = True
    assert (merged[changed] == 0.5).all() and (merged[~changed] == own[~changed]).all()
    # 12-byte pixels (no machine word) take the slow path
    b3 = rng.integers(0, 255, (2, 3, 12), dtype=np.uint8)
    a3 = b3.copy()
    a3[1, 1, 11] ^= 1
    assert merge.changed_runs(b3.tobytes(), a3.tobytes(), 3, 2, 12) == [(1, 1, 2)]


def test_partly_transparent_alpha_of_each_depth():
    merge = _merge_module()
    rng = np.random.default_rng(1)
    for dtype, one in ((np.uint8, 255), (np.dtype("<u2"), 65535), (np.dtype("<f2"), 1.0), (np.dtype("<f4"), 1.0)):
        pixels = rng.integers(0, 200, (6, 5, 4)).astype(dtype)
        pixels[..., 3] = one
        pixels[2, 1:4, 3] = 0  # fully transparent pixels are fine
        opaque = np.array(one, dtype).tobytes()
        size = pixels.dtype.itemsize
        assert not merge.partly_transparent(pixels.tobytes(), 4 * size, 3 * size, opaque), dtype
        for alpha in ((0.001, 0.5) if pixels.dtype.kind == "f" else (1, one - 1)):
            translucent = pixels.copy()
            translucent[5, 4, 3] = alpha
            assert merge.partly_transparent(translucent.tobytes(), 4 * size, 3 * size, opaque), (dtype, alpha)
    gray = bytes([9, 255, 9, 0, 9, 128])  # GRAYA 8-bit: the last pixel is half transparent
    assert merge.partly_transparent(gray, 2, 1, b"\xff") and not merge.partly_transparent(gray[:4], 2, 1, b"\xff")


# --------------------------------------------------------------------------- inside Krita
@pytest.fixture(scope="module")
def precision(krita_setup):  # noqa: F811
    # SMILE_KRITA_CASES, e.g. stacked: only those cases (the others then fail: not recorded); SMILE_KRITA_BIG, e.g.
    # 6000x4000: time the preview and Apply on a large float image
    passed = {k: os.environ[k] for k in ("SMILE_KRITA_CASES", "SMILE_KRITA_BIG") if os.environ.get(k)}
    out, results = run_kritarunner(krita_setup, "runner_precision", "precision-out", **passed)
    if "big" in results:
        (krita_setup["artefacts"] / "krita-big-timings.json").write_text(json.dumps(results["big"], indent=1))
    return {"out": out, "results": results}


def _case(precision, name: str) -> dict:
    return recorded_case(precision["results"], name)


def _pixels(precision, case: dict, which: str) -> np.ndarray:
    """A dumped layer as an (H, W, C) array in Krita's channel order."""
    model, depth = case["space"][:2]
    dump = case[which]
    _, _, w, h = dump["rect"]
    data = np.fromfile(precision["out"] / dump["file"], dtype=DTYPES[depth])
    return data.reshape(h, w, CHANNELS[model])


def _face_box(case: dict) -> list:
    faces = [f for f in case["reply"]["faces"] if f.get("edited")]
    assert faces, f"the engine edited no face: {case['reply']}"
    return faces[0]["box"]


def _near(shape, box, origin=(0, 0)) -> np.ndarray:
    """True around the face box (image coordinates; ``origin``: where the array starts)."""
    h, w = shape[:2]
    x0, y0, x1, y1 = box
    pad = PAD * max(x1 - x0, y1 - y0)
    ox, oy = origin
    near = np.zeros((h, w), bool)
    near[max(0, int(y0 - pad) - oy):max(0, int(y1 + pad) + 1 - oy), max(0, int(x0 - pad) - ox):max(0, int(x1 + pad) + 1 - ox)] = True
    return near


def _bitwise_changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pixels whose bytes differ (NaN-safe, -0.0 ≠ 0.0: what "bit-identical" means)."""
    assert a.shape == b.shape and a.dtype == b.dtype
    view = {1: np.uint8, 2: np.uint16, 4: np.uint32}[a.dtype.itemsize]
    return (a.view(view) != b.view(view)).any(axis=-1)


def _assert_face_only(precision, name: str, min_changed: int = 500) -> tuple:
    case = _case(precision, name)
    assert case["statuses"][-1][0] == "done", case["statuses"]
    before, at = case["layers_before"], case["layers_before"].index(case["source_name"]) + 1
    assert case["layers_after"] == before[:at] + [case["source_name"] + " smile"] + before[at:], \
        "the Smile layer is not right above its source, named after it"
    assert case["result_space"] == case["space"], "the new layer is not in the image's colour space"
    assert case["documents_open"] == 1, "temporary documents were left open"
    source, result = _pixels(precision, case, "source"), _pixels(precision, case, "result")
    changed = _bitwise_changed(source, result)
    assert changed.sum() > min_changed, f"only {changed.sum()} pixels changed: the face was not edited"
    rect = case["source"]["rect"]
    near = _near(changed.shape, _face_box(case), origin=(rect[0], rect[1]))
    assert not (changed & ~near).any(), \
        f"{(changed & ~near).sum()} pixels away from the face differ from the source"
    assert not _bitwise_changed(np.ascontiguousarray(source[..., -1:]), np.ascontiguousarray(result[..., -1:])).any(), \
        "alpha changed"
    return case, source, result, changed


def _srgb8(values: np.ndarray) -> np.ndarray:
    """Linear light (0..1) encoded with the sRGB curve, in 8-bit steps (as floats)."""
    v = np.clip(values.astype(np.float64), 0.0, 1.0)
    return 255.0 * np.where(v <= 0.0031308, 12.92 * v, 1.055 * np.power(v, 1 / 2.4) - 0.055)


def _reference(precision) -> tuple:
    """The 8-bit sRGB portrait smiled: (source, result) as R,G,B floats 0..255."""
    case = _case(precision, "u8")
    src, res = _pixels(precision, case, "source"), _pixels(precision, case, "result")
    return src[..., 2::-1].astype(np.float64), res[..., 2::-1].astype(np.float64)


def _tone_error(precision, rgb_8bit_scale: np.ndarray, changed: np.ndarray) -> float:
    """Mean absolute difference (8-bit levels) in the changed pixels between a result (R,G,B,
    sRGB-encoded, 0..255) and the 8-bit reference result."""
    _, ref = _reference(precision)
    return float(np.abs(rgb_8bit_scale[changed] - ref[changed]).mean())


def test_8bit_reference(precision):
    _assert_face_only(precision, "u8")


def test_u16_linear_document_face_changed_rest_identical(precision):
    case, source, result, changed = _assert_face_only(precision, "u16")
    assert case["space"][:2] == ["RGBA", "U16"] and case["profile"].endswith("g10.icc"), case["space"]
    # the face has the tone of the 8-bit result (Krita's U16 layout: B,G,R,A; linear light)
    rgb = _srgb8(result[..., 2::-1] / 65535.0)
    error = _tone_error(precision, rgb, changed)
    wrong = _tone_error(precision, result[..., 2::-1] / 257.0, changed)  # read as if sRGB-encoded
    assert error < 1.5, f"the smiled face is off by {error:.2f} levels on average"
    assert wrong > 20, wrong  # (the measure tells a wrong tone curve apart)
    # the low bits of the untouched pixels survive (the source's words are not multiples of 257)
    assert (source[~changed] % 257 != 0).mean() > 0.5


def test_u16_srgb_document(precision):
    case, source, result, changed = _assert_face_only(precision, "u16srgb")
    error = _tone_error(precision, result[..., 2::-1] / 257.0, changed)
    assert error < 1.5, error


def test_f32_keeps_values_outside_0_1_and_face_tone(precision):
    case, source, result, changed = _assert_face_only(precision, "f32")
    assert case["space"][:2] == ["RGBA", "F32"] and case["profile"].endswith("g10.icc"), case["space"]
    # the band of the top rows and the corner hold values no 16-bit image can: kept exactly
    assert (result[:8, :, 0] == 7.5).all() and (result[:8, :, 2] == -0.25).all()
    assert (result[-16:, -16:, 0] == 1000.0).all() and (result[-16:, -16:, 1] == -3.0).all()
    error = _tone_error(precision, _srgb8(result[..., :3]), changed)  # float RGBA is R,G,B,A
    assert error < 1.5, f"the smiled face is off by {error:.2f} levels on average"


def test_f32_selection_respected(precision):
    case, source, result, changed = _assert_face_only(precision, "f32_selected", min_changed=100)
    x1 = case["selection"][2]
    assert not changed[:, x1:].any(), "pixels outside the selection changed"


def test_f16_document(precision):
    case, source, result, changed = _assert_face_only(precision, "f16")
    assert (result[:8, :, 0] == 3.0).all() and (result[:8, :, 2] == -0.5).all()
    error = _tone_error(precision, _srgb8(result[..., :3].astype(np.float32)), changed)
    assert error < 1.5, error


@pytest.mark.parametrize("name", ["graya8", "graya16"])
def test_grayscale_documents(precision, name):
    case, source, result, changed = _assert_face_only(precision, name)
    assert case["space"][0] == "GRAYA"
    # gray in the changed face stays close to the 8-bit result's luminance
    gray = result[..., 0].astype(np.float64)
    gray = gray * 255.0 / 65535.0 if name == "graya16" else gray
    if case["profile"].split("-")[-1].startswith("g10"):  # linear gray
        gray = _srgb8(gray / 255.0)
    _, ref = _reference(precision)
    luma = ref @ np.array([0.2126, 0.7152, 0.0722])
    error = float(np.abs(gray[changed] - luma[changed]).mean())
    assert error < 4.0, f"the gray face is off by {error:.2f} levels on average"


@pytest.mark.parametrize("name", ["moved_f32", "moved_u8"])
def test_layer_moved_beyond_canvas(precision, name):
    case = _case(precision, name)
    x, y, w, h = case["source"]["rect"]
    assert case["offset"] == [40, 24] and x + w > 512, case["source"]["rect"]  # the layer reaches beyond the canvas
    case, source, result, changed = _assert_face_only(precision, name)
    # every pixel of the layer is there, the ones off the canvas too
    assert not changed[:, 512 - x:].any()


def test_failure_leaves_document_unchanged(precision):
    case = _case(precision, "failure")
    assert case["reply"]["ok"], case["reply"]  # the engine did its part
    assert case["layers_after"] == case["layers_before"], "a failed Apply changed the layers"
    kind, message = case["statuses"][-1]
    assert kind == "error" and "simulated conversion failure" in message and "unchanged" in message, case["statuses"]
    assert "\n" not in message
    assert case["documents_open"] == 1, "temporary documents were left open"


@pytest.mark.parametrize("name,words", [("cmyk", "CMYKA/U8"), ("lab", "LABA/U16"), ("xyz", "XYZA/F32"),
                                        ("ycbcr", "YCbCrA/U8"), ("mask", "transparency mask"),
                                        ("other_space", "Convert Layer Color Space"),
                                        ("other_depth", "Convert Layer Color Space")])
def test_unsupported_refused_with_one_line(precision, name, words):
    case = _case(precision, name)
    assert case["request_id"] is None and case["layers_after"] == case["layers_before"]
    kind, message = case["statuses"][-1]
    assert kind == "error" and words in message and "\n" not in message, case["statuses"]
    if name in ("cmyk", "lab", "xyz", "ycbcr"):
        assert "Convert Image Color Space" in message and "RGB" in message, message


# --------------------------------------------------------------------------- layers a copy would change
#: runner_stacked.py's cases: a layer that is not plain (the Smile layer is the source with the
#: changes, composited like it, and the source is hidden), then the plain ones (a full copy, the
#: source left as it is)
NOT_PLAIN = ["stacked_filter_mask", "stacked_transparency_mask", "stacked_opacity", "stacked_multiply",
             "stacked_translucent", "stacked_clipped", "stacked_group", "stacked_blur_mask", "stacked_painted_opacity"]
#: (a local selection mask only holds a selection: the layer is plain)
PLAIN = ["stacked_plain_hole", "stacked_painted", "stacked_plain_selection_mask"]
SELECTION_MASK = "selectionmask"
RED_SQUARE = (16, 16, 32, 32)  # (runner_stacked.py) painted on the layer while Apply ran
HOLE = (440, 440, 64, 64)  # (runner_stacked.py) hidden by the transparency mask / transparent on a plain layer
#: how far (8-bit levels) the merged image after Apply may be from the same change made in place
#: on the source, in the face (away from it: not at all).  Measured: 0 in every case (the Smile
#: layer is the source with the very same pixels written into it); before, with a layer of only
#: the changed pixels on top of the source, up to 47 (50 % opacity, alpha 128), 78 (Multiply),
#: 25 (a blur filter mask: 1,843 pixels over 2 levels off)
IN_PLACE_LEVELS = 0


def _square(rect) -> tuple:
    x, y, w, h = rect
    return slice(y, y + h), slice(x, x + w)


def _levels_off(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per pixel, the largest difference of any channel (8-bit levels)."""
    return np.abs(a.astype(np.int32) - b.astype(np.int32)).max(axis=-1)


@pytest.mark.parametrize("name", NOT_PLAIN + PLAIN)
def test_merged_image_is_the_edit_in_place(precision, name):
    """Apply makes the merged image what writing the engine's changes straight into the source
    would: not one level different away from the face, at most IN_PLACE_LEVELS in it."""
    case = _case(precision, name)
    assert case["statuses"][-1][0] == "done", case["statuses"]
    assert "in_place_crash" not in case, case["in_place_crash"]
    before, at = case["layers_before"], case["layers_before"].index(case["source_name"]) + 1
    assert case["layers_after"] == before[:at] + [case["source_name"] + " smile"] + before[at:], \
        "the Smile layer is not right above its source, named after it"
    assert case["result_parent"] == "" and case["layers_at_merged_before"] == before
    assert case["documents_open"] == 1, "temporary documents were left open"
    merged_before, merged_after = _pixels(precision, case, "merged_before"), _pixels(precision, case, "merged_after")
    in_place = _pixels(precision, case, "merged_in_place")
    near = _near(in_place.shape, _face_box(case))
    off = _levels_off(merged_after, in_place)
    assert not (off[~near]).any(), \
        f"{(off[~near] > 0).sum()} pixels away from the face differ from the edit in place (up to {off[~near].max()} levels)"
    assert off[near].max() <= IN_PLACE_LEVELS, \
        (f"the face is up to {off[near].max()} levels (mean {off[near].mean():.2f}; {(off[near] > 2).sum()} pixels over 2) "
         "off the edit in place")
    changed = _bitwise_changed(merged_before, merged_after)
    assert (changed & near).sum() > 500, f"only {changed.sum()} pixels of the merged image changed: the face was not edited"
    source, result = _pixels(precision, case, "source"), _pixels(precision, case, "result")
    differs = _bitwise_changed(source, result)
    painted = np.zeros_like(near)
    if name.startswith("stacked_painted"):  # the paint added during Apply is in the Smile layer
        painted[_square(RED_SQUARE)] = True
        assert (result[_square(RED_SQUARE)] == (0, 0, 255, 255)).all(), "the paint added during Apply is gone"
    # the whole layer, the changed pixels replaced (a group: what it shows)
    assert not (differs & ~near & ~painted).any() and (differs & near).sum() > 500
    props, source_props, after = case["result_props"], case["source_props"], case["source_props_after"]
    for key in ("blending", "opacity", "visible", "inherit_alpha"):
        assert props[key] == source_props[key], (key, props, source_props)
    # a paint layer's masks come along (a plain layer's full copy has none); a group is read with its masks applied: none
    masks = [m for m in source_props["masks"] if m != SELECTION_MASK] if name in PLAIN else source_props["masks"]
    assert props["masks"] == (masks if source_props["type"] == "paintlayer" else []), props
    status = case["statuses"][-1][1]
    if name in PLAIN:  # a full copy on top; the source stays as it was
        assert after == source_props and "hidden" not in status, (after, status)
    else:  # the source is hidden under the Smile layer
        assert after == dict(source_props, visible=False), after
        assert f"the source '{case['source_name']}' is hidden under it" in status, status
        assert f"Ctrl+Z removes it; '{case['source_name']}' stays hidden: show it again with its eye" in status, status
    if name == "stacked_plain_selection_mask":  # it counts as plain: the source keeps showing, its mask stays
        assert source_props["masks"] == [SELECTION_MASK] and after["visible"], source_props


@pytest.mark.parametrize("name", ["stacked_depth_changed", "stacked_plain_depth_changed", "stacked_resized"])
def test_image_changed_during_apply(precision, name):
    """The image's colour depth or size changed while the engine worked: one line, nothing added."""
    case = _case(precision, name)
    assert case["reply"]["ok"], case["reply"]  # (the engine did its part)
    assert "result" not in case and case["layers_after"] == case["layers_before"], case["layers_after"]
    kind, message = case["statuses"][-1]
    what = "size changed from 512×512 to 576×512" if name == "stacked_resized" else \
        "colour space changed from RGB 8-bit integer"
    assert kind == "error" and what in message and "while Smile worked" in message and "\n" not in message, case["statuses"]
    assert "nothing was added" in message, message


def test_pass_through_group_refused(precision):
    """A pass-through group has no picture of its own to read or replace: one line, no request."""
    case = _case(precision, "stacked_pass_through")
    assert case["request_id"] is None and case["layers_after"] == case["layers_before"]
    kind, message = case["statuses"][-1]
    assert kind == "error" and "pass-through" in message and "'Group'" in message and "\n" not in message, message
    assert case["source_props_after"] == case["source_props"], "the source layer was changed"


@pytest.mark.parametrize("name,words", [
    ("stacked_hidden", "'Face' is hidden: show it (its eye in the Layers docker), then Apply"),
    ("stacked_filter_layer", "'Invert' is a filter layer: it has no pixels of its own; select the paint layer with the face"),
    ("stacked_fill_layer", "'Fill' is a fill layer: it has no pixels of its own; select the paint layer with the face")])
def test_source_refused_before_any_request(precision, name, words):
    """A hidden layer (its Smile layer would be hidden too and change nothing that shows; after
    Ctrl+Z a source Apply hid stays hidden), a filter or fill layer (a fixed picture would replace
    the live one): one line, no request, nothing added or changed."""
    case = _case(precision, name)
    assert case["request_id"] is None and case["layers_after"] == case["layers_before"], case["layers_after"]
    kind, message = case["statuses"][-1]
    assert kind == "error" and message == words, case["statuses"]
    assert case["source_props_after"] == case["source_props"], "the source layer was changed"
    assert case["source_props"]["type"] == {"stacked_hidden": "paintlayer", "stacked_filter_layer": "filterlayer",
                                            "stacked_fill_layer": "filllayer"}[name]
    assert case["source_props"]["visible"] is (name != "stacked_hidden")


def test_not_plain_cases_are_what_they_say(precision):
    """The runner made each layer what its case's name says."""
    props = {name: _case(precision, name)["source_props"] for name in NOT_PLAIN}
    assert props["stacked_filter_mask"]["masks"] == props["stacked_blur_mask"]["masks"] == ["filtermask"]
    assert props["stacked_transparency_mask"]["masks"] == ["transparencymask"]
    assert props["stacked_opacity"]["opacity"] == props["stacked_painted_opacity"]["opacity"] == 128
    assert props["stacked_multiply"]["blending"] == "multiply"
    assert props["stacked_clipped"]["inherit_alpha"] is True
    assert props["stacked_group"]["type"] == "grouplayer" and props["stacked_group"]["masks"] == ["filtermask"]
    case = _case(precision, "stacked_transparency_mask")  # the mask hides the portrait in the square
    hidden = _bitwise_changed(_pixels(precision, case, "source"), _pixels(precision, case, "merged_before"))
    assert hidden[_square(HOLE)].mean() > 0.9
    case = _case(precision, "stacked_translucent")
    assert (_pixels(precision, case, "source")[..., 3] == 128).all()


def test_group_filter_mask_applied_once(precision):
    """A group is read with its (inverting) filter mask applied: the Smile face must not be
    inverted again (a 3-px shift of the face moves its pixels by ~10 levels; inverted twice, ~100)."""
    case = _case(precision, "stacked_group")
    merged_before, merged_after = _pixels(precision, case, "merged_before"), _pixels(precision, case, "merged_after")
    changed = _bitwise_changed(merged_before, merged_after)
    off = np.abs(merged_after[changed][:, :3].astype(int) - merged_before[changed][:, :3]).mean()
    assert changed.sum() > 500 and off < 25, f"the face is {off:.1f} levels off what the group shows"


def test_layer_deleted_during_apply(precision):
    case = _case(precision, "stacked_deleted")
    assert case["reply"]["ok"], case["reply"]  # (the engine did its part)
    assert "result" not in case and case["layers_after"] == ["Background"], case["layers_after"]
    kind, message = case["statuses"][-1]
    assert kind == "error" and "deleted" in message and "'Face'" in message and "\n" not in message, case["statuses"]
    assert not any("added layer" in m for _, m in case["statuses"]), case["statuses"]
    merged_before, merged_after = _pixels(precision, case, "merged_before"), _pixels(precision, case, "merged_after")
    assert not _bitwise_changed(merged_before, merged_after).any()
