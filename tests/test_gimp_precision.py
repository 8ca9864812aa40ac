"""The GIMP 3 plug-in on images that are not plain 8-bit RGB, inside the real GIMP (3.0.4, headless).

16- and 32-bit integer (perceptual and linear), 16-bit half, 32- and 64-bit float (with values
beyond 0..1, as HDR work leaves them), grayscale of several precisions, layers with alpha, a
layer inside a layer group, a layer smaller than the canvas with a selection, an image with an
Adobe RGB profile, a layer whose own layer mask hides part of the face, in place and on a new
layer (with and without its mask), sources a layer on top would show twice (50 % opacity,
Multiply, Screen, alpha; over an opaque layer: the image must look as after the edit in place), a
hidden source, a layer in a hidden group (refused on a new layer, edited in place), a floating
selection, and an indexed image.  Every
layer is read back from GIMP in its own format ("native": the exact bytes GIMP holds), and the
rule checked is the project's: away from the face every pixel keeps its exact value (bit for
bit, at the layer's own precision), the face changes, and an image Smile cannot take is refused
with one line saying what to do, and left as it was.

Runs the real engine with the fixture model (a pure 3-pixel translation) like
tests/test_gimp_host.py, whose chroot, install and GIMP-driving helpers it uses.  The portrait is
the project's astronaut (tests/portrait.py: the public-domain NASA portrait of
samples/astronaut.jpg, made neutral), widened to 16 bits with noise in the low bits, so that
quantising to 8 bits shows.  Undo has no procedure of its own: tests/test_gimp_host.py presses
Ctrl+Z in GIMP's own window (its full interface under Xvfb).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from test_gimp_host import (FACE_ZONE, MODEL_RANGE, _tail, case, engine_binds, gimp_root,  # noqa: F401
                            install_plugin, mask_pixels, pixels, run_gimp)

pytestmark = pytest.mark.host

HDR = [1.5, 4.0, -0.25, 0.75]  # float values written into the HDR band (beyond 0..1 but one)
HDR_BAND = [0, 0, 512, 16]  # x, y, w, h: the top rows, far from the face
DTYPES = {"u8": np.uint8, "u16": np.uint16, "u32": np.uint32, "half": np.float16, "float": np.float32,
          "double": np.float64}
# a layer smaller than the canvas, at an offset (x, y, w, h), and a selection (image coordinates)
# around the face, larger than FACE_ZONE but smaller than the layer
CROP = [40, 20, 400, 300]
SELECT = [60, 25, 360, 280]
# the rectangle (x, y, w, h) the layer's own layer mask hides: the face's left half (its box is
# x 175…266, y 76…167), down to below the chin
HIDE = [150, 60, 70, 190]
# an ellipse (its box: x, y, w, h) around the face, feathered in the tests
FEATHERED = [150, 50, 150, 180]
# and one that half hides the face's right part (x, y, w, h, mask value 0..255)
HALF_HIDE = [220, 60, 60, 190, 128]


def native(layer: dict) -> np.ndarray:
    """A dumped layer in its own format, as an (H, W, components) array of its own type."""
    dtype = DTYPES[layer["format"].split()[-1]]
    return np.fromfile(layer["native"], dtype).reshape(layer["height"], layer["width"], layer["components"])


def has_alpha(layer: dict) -> bool:
    return "A" in layer["format"].split()[0]


def colour(layer: dict) -> np.ndarray:
    """The colour channels (no alpha) of a dumped layer, in its own format."""
    values = native(layer)
    return values[..., :-1] if has_alpha(layer) else values


def bits(values: np.ndarray) -> np.ndarray:
    """The values' bit patterns (so that float values compare exactly, -0.0 and NaN included)."""
    return values.view({1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[values.dtype.itemsize])


def changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (bits(a) != bits(b)).any(axis=-1)


def outside_face(shape: tuple[int, int], offsets=(0, 0)) -> np.ndarray:
    """Where a layer of ``shape`` at ``offsets`` lies outside FACE_ZONE (image coordinates)."""
    r0, r1, c0, c1 = FACE_ZONE
    where = np.ones(shape, bool)
    x, y = offsets
    where[max(0, r0 - y):max(0, r1 - y), max(0, c0 - x):max(0, c1 - x)] = False
    return where


def assert_only_the_face_changed(before: dict, after: dict) -> np.ndarray:
    """``after`` equals ``before`` bit for bit (colour, at their own precision) away from the face,
    and the face changed; returns where it changed."""
    assert after["format"].split()[-1] == before["format"].split()[-1], \
        f"the layer's precision changed: {before['format']} → {after['format']}"
    assert (after["width"], after["height"]) == (before["width"], before["height"])
    moved = changed(colour(after), colour(before))
    away = moved & outside_face(moved.shape, before["offsets"])
    assert not away.any(), (f"{away.sum()} pixels away from the face changed ({before['format']}), e.g. at "
                            f"{np.argwhere(away)[:3].tolist()}: {colour(before)[away][:2].tolist()} → "
                            f"{colour(after)[away][:2].tolist()}")
    assert moved.sum() > 1000, f"only {moved.sum()} pixels of the face changed"
    return moved


def assert_hdr_band_survived(layer: dict) -> None:
    """The HDR band still holds values beyond 0..1 (stored as written: linear, or sRGB-encoded)."""
    x, y, w, h = HDR_BAND
    band = colour(layer)[y:y + h, x:x + w].astype(np.float64)
    assert band.max() > 1.5 and band.min() < -0.2, f"the HDR values are gone: {band.min()} … {band.max()}"


# --------------------------------------------------------------------------- the GIMP session
def portraits(work: Path) -> dict[str, Path]:
    """The astronaut as an 8-bit PNG, a 16-bit PNG and a 16-bit PNG with alpha."""
    import sys
    sys.path.insert(0, str(Path(__file__).parent))
    from portrait import neutral_astronaut

    rgb8 = np.array(neutral_astronaut())
    noise = np.random.default_rng(7).integers(-128, 128, rgb8.shape)
    rgb16 = np.clip(rgb8.astype(np.int64) * 257 + noise, 0, 65535).astype(np.uint16)
    rows, cols = np.mgrid[0:512, 0:512]
    alpha = (65535 - (cols * 37 + rows * 11) % 9000).astype(np.uint16)
    alpha[460:, 460:] = 0  # a transparent corner (its colour is still there)
    paths = {"8": work / "astronaut8.png", "16": work / "astronaut16.png", "16a": work / "astronaut16a.png"}
    cv2.imwrite(str(paths["8"]), rgb8[..., ::-1])
    cv2.imwrite(str(paths["16"]), rgb16[..., ::-1])
    cv2.imwrite(str(paths["16a"]), np.dstack([rgb16[..., ::-1], alpha]))
    return paths


IN_PLACE = {"new-layer": False}
#: the colour (0..1) of an opaque layer put under the source, so that its blending shows
BELOW = [0.3, 0.6, 0.9]
#: sources that a layer on top would not show as the edit in place does (and a plain one): name →
#: (portrait, case options); whether the new layer replaces the source
STACKED = {"opacity-u16": ("16", {"opacity": 50.0}),
           "multiply-float": ("16", {"precision": "FLOAT_LINEAR", "layer_mode": "MULTIPLY"}),
           "screen-u8": ("8", {"layer_mode": "SCREEN"}),
           "alpha-u16": ("16a", {}),
           "plain-u16": ("16", {})}
REPLACED = {"opacity-u16": True, "multiply-float": True, "screen-u8": True, "alpha-u16": True, "plain-u16": False}
#: Adobe RGB (1998), as the chroot has it (Debian's ghostscript ships it with GIMP)
WIDE_PROFILE = "/usr/share/color/icc/ghostscript/a98.icc"


@pytest.fixture(scope="module")
def precision_run(gimp_root: Path, tmp_path_factory) -> tuple[dict, str]:  # noqa: F811
    """One GIMP session with the real engine (fixture model) on images of every kind."""
    import sys
    sys.path.insert(0, str(Path(__file__).parent))
    from fixture_model import build_fixture_model

    work = tmp_path_factory.mktemp("gimp-precision")
    home = work / "home"
    install_plugin(home, work)
    model = build_fixture_model(work / "fixture.onnx", dx=3.0, dy=0.0, mask=0.0, rgb=0.0,
                                strength_range=MODEL_RANGE)
    image = portraits(work)
    hdr = HDR_BAND + [HDR]
    cases = [
        case("u16-in-place", image["16"], work, args=IN_PLACE),
        case("u16-linear-in-place", image["16"], work, precision="U16_LINEAR", args=IN_PLACE),
        case("float-hdr-in-place", image["16"], work, precision="FLOAT_LINEAR", hdr=hdr, args=IN_PLACE),
        case("float-hdr-new-layer", image["16"], work, precision="FLOAT_LINEAR", hdr=hdr),
        case("half-hdr-in-place", image["16"], work, precision="HALF_NON_LINEAR", hdr=hdr, args=IN_PLACE),
        case("double-hdr-in-place", image["16"], work, precision="DOUBLE_LINEAR", hdr=hdr, args=IN_PLACE),
        case("u32-linear-no-mask", image["16"], work, precision="U32_LINEAR", args={"layer-mask": False}),
        case("rgba16-in-place", image["16a"], work, args=IN_PLACE),
        case("rgba-float-new-layer", image["16a"], work, precision="FLOAT_LINEAR"),
        case("rgba-half-in-place", image["16a"], work, precision="HALF_NON_LINEAR", args=IN_PLACE),
        case("gray8-in-place", image["8"], work, mode="gray", args=IN_PLACE),
        case("gray16-in-place", image["16"], work, mode="gray", args=IN_PLACE),
        case("gray-u16-linear-alpha-in-place", image["16a"], work, mode="gray", precision="U16_LINEAR",
             args=IN_PLACE),
        case("gray-half-in-place", image["16"], work, mode="gray", precision="HALF_LINEAR", args=IN_PLACE),
        case("gray-u32-in-place", image["16"], work, mode="gray", precision="U32_NON_LINEAR", args=IN_PLACE),
        case("gray-float-hdr-new-layer", image["16a"], work, mode="gray", precision="FLOAT_LINEAR", hdr=hdr),
        case("group-u16-new-layer", image["16"], work, group=True),
        case("offset-float-selection-in-place", image["16"], work, precision="FLOAT_LINEAR", crop_layer=CROP,
             select=SELECT, args=IN_PLACE),
        case("u8-in-place", image["8"], work, args=IN_PLACE),
        case("hidden-new-layer", image["16"], work, hide=HIDE, projection=True),
        case("hidden-no-mask", image["16"], work, hide=HIDE, projection=True, args={"layer-mask": False}),
        case("hidden-in-place", image["16"], work, hide=HIDE, projection=True, args=IN_PLACE),
        case("half-hidden-float-new-layer", image["16"], work, precision="FLOAT_LINEAR", hide=HALF_HIDE,
             projection=True),
        case("indexed", image["8"], work, mode="indexed"),
        case("hidden-source-new-layer", image["16"], work, hidden=True),
        case("transparent-source-new-layer", image["16"], work, opacity=0.0),
        # a feathered ellipse over the face: the engine edits through its feather, GIMP merges
        # in place through it; no pixel outside it changes
        case("feathered-float-in-place", image["16"], work, precision="FLOAT_LINEAR", select=FEATHERED,
             ellipse=True, feather=40, args=IN_PLACE),
        case("feathered-u16-new-layer", image["16"], work, select=FEATHERED, ellipse=True, feather=40),
        case("empty-selection-u16-in-place", image["16"], work, select=[], args=IN_PLACE),
        # the layer reaches past the canvas's top left corner; the face is still on it
        case("past-canvas-u16-new-layer", image["16"], work, offsets=[-120, -40]),
        case("past-canvas-u16-in-place", image["16"], work, offsets=[-120, -40], args=IN_PLACE),
        case("locked-visibility-half-opaque", image["16"], work, opacity=50.0, lock_visibility=True),
        case("pass-through-multiply", image["16"], work, group=True, group_mode="PASS_THROUGH", layer_mode="MULTIPLY"),
        case("hidden-group-new-layer", image["16"], work, group=True, group_hidden=True),
        case("hidden-group-in-place", image["16"], work, group=True, group_hidden=True, args=IN_PLACE),
        case("transparent-group-new-layer", image["16"], work, group=True, group_opacity=0.0),
        case("floating-half-opaque", image["16"], work, opacity=50.0, floating=True),
    ]
    for name, (source, extra) in STACKED.items():  # each on a new layer and in place, over an opaque layer
        cases.append(case(f"{name}-new-layer", image[source], work, below=BELOW, projection=True, **extra))
        cases.append(case(f"{name}-in-place", image[source], work, below=BELOW, projection=True, args=IN_PLACE,
                          **extra))
    if (gimp_root / WIDE_PROFILE.lstrip("/")).is_file():
        cases.append(case("adobe-rgb-float-in-place", image["16"], work, profile=WIDE_PROFILE,
                          precision="FLOAT_LINEAR", hdr=hdr, args=IN_PLACE))
    return run_gimp(gimp_root, home, work, cases, {"SMILE_MODEL": str(model)}, engine_binds())


def result_of(run: tuple[dict, str], name: str) -> dict:
    report, console = run
    result = report["cases"][name]
    assert result["success"], f"{result['status']}: {result['error']}\n{_tail(console)}"
    return result


@pytest.mark.parametrize("name, encoding", [
    ("u16-in-place", "R'G'B' u16"), ("u16-linear-in-place", "RGB u16"), ("float-hdr-in-place", "RGB float"),
    ("half-hdr-in-place", "R'G'B' half"), ("double-hdr-in-place", "RGB double"),
    ("rgba16-in-place", "R'G'B'A u16"), ("rgba-half-in-place", "R'G'B'A half"), ("gray8-in-place", "Y' u8"),
    ("gray16-in-place", "Y' u16"),
    ("gray-u16-linear-alpha-in-place", "YA u16"), ("gray-half-in-place", "Y half"),
    ("gray-u32-in-place", "Y' u32"), ("u8-in-place", "R'G'B' u8")])
def test_in_place_keeps_every_pixel_away_from_the_face_bit_for_bit(precision_run, name, encoding):
    result = result_of(precision_run, name)
    (before,), (after,) = result["before"], result["after"]
    assert before["format"] == encoding and after["format"] == encoding
    assert_only_the_face_changed(before, after)
    if has_alpha(before):  # the engine never changes alpha
        assert np.array_equal(bits(native(after)[..., -1]), bits(native(before)[..., -1]))


def test_an_image_with_its_own_colour_profile_keeps_its_pixels(precision_run):
    """Adobe RGB, linear float: GIMP converts what the engine sees to sRGB and its result back;
    every pixel it did not change keeps its value, beyond 0..1 too."""
    if "adobe-rgb-float-in-place" not in precision_run[0]["cases"]:
        pytest.skip(f"the chroot has no {WIDE_PROFILE}")
    result = result_of(precision_run, "adobe-rgb-float-in-place")
    (before,), (after,) = result["before"], result["after"]
    assert before["format"] == "RGB float"
    assert_only_the_face_changed(before, after)
    assert_hdr_band_survived(after)


@pytest.mark.parametrize("name", ["float-hdr-in-place", "half-hdr-in-place", "double-hdr-in-place"])
def test_float_values_beyond_one_survive_in_place(precision_run, name):
    result = result_of(precision_run, name)
    assert_hdr_band_survived(result["before"][0])
    assert_hdr_band_survived(result["after"][0])


@pytest.mark.parametrize("name", ["float-hdr-new-layer", "gray-float-hdr-new-layer", "u32-linear-no-mask",
                                  "group-u16-new-layer", "rgba-float-new-layer"])
def test_new_layer_has_the_layers_precision_and_its_exact_pixels_away_from_the_face(precision_run, name):
    result = result_of(precision_run, name)
    (source_before,), (new, source) = result["before"], result["after"]
    assert new["name"] == "Smile (λ=1.0)"
    assert np.array_equal(bits(native(source)), bits(native(source_before))), "the source layer changed"
    assert new["format"].split()[-1] == source["format"].split()[-1], \
        f"the new layer is {new['format']}, its source {source['format']}"
    moved = assert_only_the_face_changed(source, new)
    if has_alpha(source):  # the source's alpha, exactly
        assert np.array_equal(bits(native(new)[..., -1]), bits(native(source)[..., -1]))
    if "hdr" in name:
        assert_hdr_band_survived(new)
    if has_alpha(source):  # partly transparent over the face: the new layer takes the source's place
        assert not new["mask"] and not source["visible"] and source_before["visible"]
        return
    assert source["visible"], "the source of a new layer on top was hidden"
    if name == "u32-linear-no-mask":
        assert not new["mask"]
        return
    assert new["mask"], "the new layer has no layer mask"
    mask = mask_pixels(new)
    assert set(np.unique(mask)) <= {0, 255}
    assert (mask[moved] == 255).all(), "a changed pixel is hidden by the layer mask"
    assert not mask[outside_face(mask.shape)].any(), "the layer mask shows pixels away from the face"


def test_a_layer_in_a_hidden_group_is_edited_in_place(precision_run):
    result = result_of(precision_run, "hidden-group-in-place")
    assert len(result["after"]) == 1
    assert_only_the_face_changed(result["before"][0], result["after"][0])


def test_layer_in_a_group_gets_its_new_layer_in_the_group(precision_run):
    result = result_of(precision_run, "group-u16-new-layer")
    new, source = result["after"]
    assert new["top_level"] == 1, "the new layer left the group"
    assert source["name"] == result["before"][0]["name"]


def test_layer_with_offsets_and_a_selection_changes_only_inside_both(precision_run):
    result = result_of(precision_run, "offset-float-selection-in-place")
    (before,), (after,) = result["before"], result["after"]
    assert after["offsets"] == before["offsets"] == CROP[:2]
    assert (before["width"], before["height"]) == tuple(CROP[2:])
    moved = assert_only_the_face_changed(before, after)
    x, y, w, h = SELECT
    inside = np.zeros(moved.shape, bool)
    inside[y - CROP[1]:y - CROP[1] + h, x - CROP[0]:x - CROP[0] + w] = True
    assert not (moved & ~inside).any(), "pixels outside the selection changed"


@pytest.mark.parametrize("name", ["hidden-new-layer", "hidden-no-mask", "hidden-in-place"])
def test_what_the_layers_own_mask_hides_stays_hidden(precision_run, name):
    """The source layer's own layer mask hides part of the face: no pixel it hides becomes visible
    in the image as shown (the projection: nothing lies below, so hidden is transparent), the
    visible part of the face still changes, and a new layer's mask is the source's mask ANDed with
    the face mask (with one) or a copy of it (without)."""
    result = result_of(precision_run, name)
    before, after = (pixels(result["projection"][when]) for when in ("before", "after"))
    hidden = before[..., 3] == 0
    x, y, w, h = HIDE
    assert hidden.sum() == w * h and hidden[y:y + h, x:x + w].all(), "the source's mask hides something else"
    came_back = hidden & (after[..., 3] > 0)
    assert not came_back.any(), (f"{came_back.sum()} pixels hidden by the source layer's own mask are shown "
                                 f"after the edit, e.g. at {np.argwhere(came_back)[:3].tolist()}")
    moved = (after != before).any(axis=-1) & ~hidden
    assert moved.sum() > 1000, f"only {moved.sum()} visible pixels of the face changed"
    assert not (moved & outside_face(moved.shape)).any(), "the projection changed away from the face"
    if name == "hidden-in-place":
        return
    new, source = result["after"]
    assert source["mask"] and new["mask"], "the new layer has no layer mask"
    own, mask = mask_pixels(source), mask_pixels(new)
    assert np.array_equal(own, mask_pixels(result["before"][0])), "the source's own mask changed"
    if name == "hidden-no-mask":
        assert np.array_equal(mask, own), "the new layer's mask is not a copy of the source's"
    else:
        assert (mask <= own).all(), "the new layer's mask shows what the source's own mask hides"
        assert not mask[outside_face(mask.shape)].any(), "the layer mask shows pixels away from the face"
        assert mask[moved].min() == 255, "a visible changed pixel is hidden by the new layer's mask"


def test_a_grey_layer_mask_over_the_face_is_taken_over_by_a_layer_in_the_sources_place(precision_run):
    """A float image whose layer's own mask is grey over part of the face: a layer on top would
    cover that part twice (128 → 192), so the new layer takes the source's place: its mask is a
    copy of the source's, value for value, the source is hidden, and the image as shown changes
    only on the face; the source's mask is left as it was."""
    result = result_of(precision_run, "half-hidden-float-new-layer")
    new, source = result["after"]
    own, mask = mask_pixels(source), mask_pixels(new)
    assert np.array_equal(own, mask_pixels(result["before"][0])), "the source's own mask changed"
    x, y, w, h, value = HALF_HIDE
    assert (own[y:y + h, x:x + w] == value).all() and (own == 255).sum() == own.size - w * h
    assert np.array_equal(mask, own), "the new layer's mask is not a copy of the source's"
    assert not source["visible"] and result["before"][0]["visible"], "the source was not hidden"
    before, after = (pixels(result["projection"][when]) for when in ("before", "after"))
    moved = (after != before).any(axis=-1)
    assert moved.sum() > 1000 and not (moved & outside_face(moved.shape)).any()


@pytest.mark.parametrize("name", list(STACKED))
def test_the_image_with_a_new_layer_looks_exactly_as_after_the_edit_in_place(precision_run, name):
    """Over an opaque layer, a source at 50 % opacity, in Multiply or Screen mode, or partly
    transparent over the face: a new layer on top would show its face again over it (at 50 %:
    the face fully opaque, up to 179 levels off), so the new layer takes the source's place (its
    mode and opacity) and the source is hidden; a plain source keeps a Normal layer on top, with
    the face mask.  Either way the image as shown is exactly the edit in place, changed only on
    the face, and the source keeps its pixels."""
    on_top, in_place = result_of(precision_run, f"{name}-new-layer"), result_of(precision_run, f"{name}-in-place")
    before = pixels(on_top["projection"]["before"])
    shown, expected = pixels(on_top["projection"]["after"]), pixels(in_place["projection"]["after"])
    moved = (expected != before).any(axis=-1)
    assert moved.sum() > 1000 and not (moved & outside_face(moved.shape)).any()
    off = (shown != expected).any(axis=-1)
    assert not off.any(), (f"{off.sum()} pixels differ from the edit in place, by up to "
                           f"{np.abs(shown.astype(int) - expected).max()} levels")
    (source_before, _), (new, source, _) = on_top["before"], on_top["after"]
    assert np.array_equal(bits(native(source)), bits(native(source_before))), "the source layer changed"
    if REPLACED[name]:
        assert not source["visible"], "the source was not hidden under the layer taking its place"
        assert (new["opacity"], new["layer_mode"]) == (source["opacity"], source["layer_mode"])
        assert not new["mask"]
    else:
        assert source["visible"] and new["mask"] and (new["opacity"], new["layer_mode"]) == (100.0, "NORMAL")


@pytest.mark.parametrize("name, message", [
    ("hidden-source-new-layer", "Smile: the layer 'Background' is hidden: show it (its eye in the Layers dialog), "
                                "or turn off \"Result on a new layer\"."),
    # (a layer in its place would show the group's layers blended with nothing below: the whole image changed)
    ("pass-through-multiply", "Smile: the group 'Group' is in Pass through mode and holds layers that blend with "
                              "what is below it: set its mode to Normal, or select one layer."),
    # (at 50 % opacity it must be hidden; with its visibility locked it stayed shown under its copy)
    ("locked-visibility-half-opaque", "Smile: the new layer must take the place of 'Background' and hide it (see "
                                      "the manual), but its visibility is locked: unlock it in the Layers dialog, "
                                      "or turn off \"Result on a new layer\"."),
    # (its new layer would go into the group, unseen)
    ("hidden-group-new-layer", "Smile: the layer 'Background' is inside the hidden group 'Group': show the group (its "
                               "eye in the Layers dialog), or turn off \"Result on a new layer\"."),
    # (its new layer, or the layer in its place, at 0 % too: nothing would show)
    ("transparent-source-new-layer", "Smile: the layer 'Background' is at 0 % opacity, so a new layer would show "
                                     "nothing: raise its Opacity in the Layers dialog, or turn off \"Result on a new "
                                     "layer\"."),
    # (its new layer would go into the group, at 0 % too)
    ("transparent-group-new-layer", "Smile: the layer 'Background' is inside the group 'Group' at 0 % opacity, so a "
                                    "new layer would show nothing: raise its Opacity in the Layers dialog, or turn "
                                    "off \"Result on a new layer\"."),
    # (pasted onto the source: hidden with it under the layer in its place, or covered by a new layer on top)
    ("floating-half-opaque", "Smile: the image has a floating selection, which a new layer would cover or hide: anchor "
                             "it (Layer ▸ Anchor Layer) or make it a layer (Layer ▸ To New Layer), or turn off "
                             "\"Result on a new layer\".")])
def test_a_source_no_new_layer_can_show_is_refused_with_one_actionable_line(precision_run, name, message):
    report, console = precision_run
    result = report["cases"][name]
    assert not result["success"] and result["status"] == "execution-error", result
    assert result["error"].strip() == message
    assert len(result["after"]) == 1 and result["after"][0]["visible"] is result["before"][0]["visible"]
    assert np.array_equal(np.fromfile(result["after"][0]["native"], np.uint8),
                          np.fromfile(result["before"][0]["native"], np.uint8))


def test_indexed_image_is_refused_with_one_actionable_line(precision_run):
    report, console = precision_run
    result = report["cases"]["indexed"]
    assert not result["success"] and result["status"] == "execution-error", result
    message = result["error"]
    assert "\n" not in message.strip()
    assert "Smile: indexed images" in message and "Image ▸ Mode ▸ RGB" in message, message
    assert len(result["after"]) == 1
    assert np.array_equal(np.fromfile(result["after"][0]["native"], np.uint8),
                          np.fromfile(result["before"][0]["native"], np.uint8))


@pytest.mark.parametrize("name", ["feathered-float-in-place", "feathered-u16-new-layer"])
def test_a_feathered_selection_keeps_every_pixel_outside_it(precision_run, name):
    result = result_of(precision_run, name)
    before, after = result["before"][0], result["after"][0]
    moved = assert_only_the_face_changed(before, after)
    selection = np.fromfile(result["selection"], np.uint8).reshape(moved.shape)
    assert 0 < (selection == 255).sum() < selection.size and ((selection > 0) & (selection < 255)).sum() > 1000
    outside = moved & (selection == 0)
    assert not outside.any(), f"{outside.sum()} pixels outside the selection changed"
    if name.endswith("new-layer"):
        assert result["after"][1]["visible"] and after["mask"]


def test_an_empty_selection_is_no_selection(precision_run):
    result = result_of(precision_run, "empty-selection-u16-in-place")
    assert not np.fromfile(result["selection"], np.uint8).any()
    assert_only_the_face_changed(result["before"][0], result["after"][0])


@pytest.mark.parametrize("name", ["past-canvas-u16-new-layer", "past-canvas-u16-in-place"])
def test_a_layer_reaching_past_the_canvas_changes_only_its_face(precision_run, name):
    result = result_of(precision_run, name)
    before, after = result["before"][0], result["after"][0]
    assert before["offsets"] == after["offsets"] == [-120, -40]
    moved = changed(colour(after), colour(before))  # (the face moved with the layer: FACE_ZONE on it)
    assert moved.sum() > 1000 and not (moved & outside_face(moved.shape)).any()
    if name.endswith("new-layer"):
        assert result["after"][1]["offsets"] == [-120, -40]
