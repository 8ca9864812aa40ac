"""smilecore.smile() as a library: bad arguments and damaged images get the engine's own errors, one line
each, before any pixel is decoded or any face looked for; nothing far from a face changes."""
from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

import smilecore
from smilecore import ImageTooLargeError, InputError, UsageError
from smilecore.errors import SmileError


@pytest.mark.parametrize("kwargs, needle", [
    ({"faces": 0}, "faces must be 'all', 'largest' or a list of 0-based indices (e.g. [0]), not 0"),
    ({"faces": None}, "faces must be"),
    ({"faces": []}, "faces is an empty list"),
    ({"faces": "0"}, "faces must be 'all', 'largest' or a list of indices, not '0'"),
    ({"faces": ["0"]}, "list of 0-based indices (e.g. [0]), not ['0']"),
    ({"faces": [True]}, "not [True]"),
    ({"faces": [-1]}, "not [-1]"),
    ({"faces": [0.0]}, "not [0.0]"),
    ({"faces": b"\x00"}, "list of 0-based indices"),
    ({"faces": {0: 1}}, "list of 0-based indices"),
    ({"min_face": "10"}, "min_face must be a whole number of pixels, 0 or more, not '10'"),
    ({"min_face": True}, "min_face must be a whole number"),
    ({"min_face": -1}, "0 or more, not -1"),
    ({"min_face": float("nan")}, "min_face must be a whole number"),
    ({"min_face": 20.5}, "not 20.5"),
    ({"max_pixels": "1000000"}, "max_pixels must be a whole number of pixels, 1 or more"),
    ({"max_pixels": 0}, "max_pixels must be a whole number of pixels, 1 or more, not 0"),
    ({"max_pixels": True}, "max_pixels must be a whole number"),
    ({"strength": True}, "strength must be a number, not True"),
    ({"strength": "1_0"}, "strength must be a number, not '1_0'"),
    ({"strength": "\u0663"}, "strength must be a number"),
    ({"strength": 10}, "strength 10 is outside this model's range"),
    ({"strength": 10**400}, "strength must be a finite number"),
    ({"strength": b"1_0"}, "strength must be a number, not b'1_0'"),
    ({"debug": "yes"}, "debug must be True or False, not 'yes'"),
    ({"selection": np.full((64, 64), np.nan, np.float32)}, "selection has NaN or infinite values"),
    ({"selection": np.ones((64, 64), np.complex64)}, "selection must be a numeric (H,W) array"),
    ({"model": 5}, "model must be a path or a model name (or a loaded SmileModel), not int"),
])
def test_bad_arguments_are_usage_errors_before_detection(kwargs, needle, astronaut, fixture_models):
    kwargs = {"model": fixture_models["shift"], **kwargs}
    with pytest.raises(UsageError) as exc:
        smilecore.smile(np.zeros((64, 64, 3), np.uint8), **kwargs)  # no face: the argument is what fails
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_numbers_written_as_json_or_text_write_them_are_read(astronaut, fixture_models):
    """A strength written plainly as text, and whole numbers that come as floats (JSON has one number type)."""
    a = smilecore.smile(astronaut, strength=" 1.5 ", model=fixture_models["shift"])
    b = smilecore.smile(astronaut, strength=1.5, min_face=20.0, max_pixels=2e8, faces=np.arange(1),
                        model=smilecore.load_model(fixture_models["shift"]))
    assert a.strength == 1.5 and np.array_equal(a.image, b.image) and b.faces[0].edited


@pytest.mark.parametrize("call", [smilecore.smile, smilecore.detect_faces])
def test_a_large_pil_image_is_refused_from_its_header(call, tmp_path, monkeypatch):
    from PIL import ImageFile

    path = tmp_path / "big.png"
    Image.new("RGB", (3000, 2000), (120, 130, 140)).save(path)
    im = Image.open(path)
    decoded = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self))
    with pytest.raises(ImageTooLargeError, match=r"image is 3000x2000 = 6 MP, above the limit of 1 MP"):
        call(im, max_pixels=1_000_000)
    assert decoded == []  # the header was read, no pixel decoded


def test_the_limit_message_gives_counts_where_megapixels_round_alike():
    from smilecore.arguments import too_large

    assert "10000x20001 = 200,010,000 pixels, above the limit of 200,000,000" in str(too_large(10000, 20001, 200_000_000))
    assert str(too_large(512, 512, 1)).endswith("= 262,144 pixels, above the limit of 1")  # not "1e-06 MP"
    assert str(too_large(3000, 2000, 1_000_000)).endswith("= 6 MP, above the limit of 1 MP")


def test_a_truncated_png_is_called_truncated_not_bad_exif(astronaut, tmp_path):
    buf = io.BytesIO()
    Image.fromarray(astronaut).save(buf, "PNG")
    data = buf.getvalue()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="corrupt or truncated") as exc:
        smilecore.smile(Image.open(tmp_path / "t.png"))
    assert "EXIF" not in str(exc.value)


def test_a_closed_image_says_so(astronaut, tmp_path):
    Image.fromarray(astronaut).save(tmp_path / "a.png")
    im = Image.open(tmp_path / "a.png")
    im.close()
    with pytest.raises(InputError, match="pass an open image"):
        smilecore.smile(im)


def test_32_bit_integer_pixels_outside_16_bits_are_refused_not_clipped(astronaut, fixture_models):
    grey = np.asarray(Image.fromarray(astronaut).convert("L")).astype(np.int32) * 257
    with pytest.raises(InputError, match=r"32-bit integer pixels from -30000 to 35535 cannot be edited"):
        smilecore.smile(Image.fromarray(grey - 30000), strength=2, model=fixture_models["shift"])
    # in range they are edited, and away from the face every value stays
    r = smilecore.smile(Image.fromarray(grey), strength=2, model=fixture_models["shift"])
    out = np.asarray(r.image)
    assert r.image.mode == "I" and r.faces[0].edited
    assert np.array_equal(out[r.mask == 0], grey[r.mask == 0]) and (out != grey).any()


def test_big_endian_16_bit_arrays_are_read_as_their_values(astronaut, fixture_models):
    native = astronaut.astype(np.uint16) * 257
    a = smilecore.smile(native.astype(">u2"), strength=2, model=fixture_models["shift"])
    b = smilecore.smile(native, strength=2, model=fixture_models["shift"])
    assert np.array_equal(a.image, b.image) and a.faces[0].edited


def test_the_strength_is_checked_before_the_faces_are_looked_for(fixture_models):
    """A bad strength fails the same way whatever the picture holds, and at once."""
    noise = np.random.default_rng(0).integers(0, 255, (2000, 2000, 3), np.uint8)
    t = time.perf_counter()
    with pytest.raises(UsageError, match="outside this model's range"):
        smilecore.smile(noise, strength=10, model=fixture_models["shift"])
    assert issubclass(UsageError, SmileError) and time.perf_counter() - t < 30  # (not a timing test: a hang guard)


def test_detect_faces_on_an_empty_array_is_an_input_error():
    from smilecore.detect import detect_faces

    with pytest.raises(InputError, match="empty"):
        detect_faces(np.zeros((0, 5, 3), np.uint8))


def test_the_readmes_python_examples_run_as_written(tmp_path, monkeypatch):
    """Each ```python block of the README's "Using the engine from Python", run on the sample as portrait.jpg:
    the second keeps the photo's metadata and JPEG tables."""
    import re
    import shutil
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    section = (root / "README.md").read_text().split("## Using the engine from Python", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```python\n(.*?)\n```$", section, re.S | re.M)  # (a fence closes on a line of its own)
    assert len(blocks) == 2 and section.count("```") == 4
    shutil.copy(root / "samples" / "astronaut.jpg", tmp_path / "portrait.jpg")
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})  # each block on its own, as a reader would paste it
    assert Image.open("portrait-smile.png").size == Image.open("portrait.jpg").size
    with Image.open("portrait-smile.jpg") as out, Image.open("portrait.jpg") as src:
        assert out.size == src.size and out.quantization == src.quantization


def test_a_16_bit_selection_is_scaled_like_an_8_bit_one(astronaut, fixture_models):
    half8 = np.zeros(astronaut.shape[:2], np.uint8)
    half8[:, 200:] = 128  # the right part of the face half-selected
    a = smilecore.smile(astronaut, strength=2, selection=half8, model=fixture_models["shift"]).image
    b = smilecore.smile(astronaut, strength=2, selection=half8.astype(np.uint16) * 257, model=fixture_models["shift"]).image
    full = smilecore.smile(astronaut, strength=2, selection=(half8 > 0).astype(np.uint16) * 65535,
                           model=fixture_models["shift"]).image
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1 and (a != astronaut).any()
    assert (np.abs(full.astype(int) - astronaut.astype(int)) > np.abs(b.astype(int) - astronaut.astype(int))).any()
    with pytest.raises(UsageError, match="not an array of object"):
        smilecore.smile(astronaut, selection=np.empty(astronaut.shape[:2], object), model=fixture_models["shift"])


def test_a_selection_too_faint_to_change_a_pixel_leaves_the_face_unedited(astronaut, fixture_models):
    faint = np.full(astronaut.shape[:2], 2, np.uint16)  # 2 / 65535 (1 would be a 0/1 mask: refused, below)
    with pytest.raises(smilecore.NoFaceError, match="the selection leaves it unchanged") as exc:
        smilecore.smile(astronaut, strength=2, selection=faint, model=fixture_models["shift"])
    assert exc.value.faces[0].edited is False


def test_detect_faces_checks_its_arguments_and_the_pixel_limit(monkeypatch):
    monkeypatch.setenv("SMILE_MAX_PIXELS", "1000")
    with pytest.raises(ImageTooLargeError, match="above the limit of"):
        smilecore.detect_faces(np.zeros((100, 100, 3), np.uint8))
    for kwargs, needle in (({"small_faces": "no"}, "small_faces must be True or False, not 'no'"),
                           ({"upside_down": None}, "upside_down must be True or False, not None"),
                           ({"min_face": "9"}, "min_face must be a whole number")):
        with pytest.raises(UsageError, match=needle):
            smilecore.detect_faces(np.zeros((10, 10, 3), np.uint8), max_pixels=100, **kwargs)


def test_a_0_1_mask_in_uint8_or_uint16_is_refused_not_read_as_1_255(astronaut, fixture_models):
    for dtype, scale in ((np.uint8, 255), (np.uint16, 65535)):
        with pytest.raises(UsageError, match=f"the selection's largest value is 1 of {scale} .a 0/1 mask..: {scale} .white. selects a pixel"):
            smilecore.smile(astronaut, strength=2, selection=np.ones(astronaut.shape[:2], dtype), model=fixture_models["shift"])
    for sel in (np.full(astronaut.shape[:2], 255, np.uint8), np.ones(astronaut.shape[:2], bool)):
        done = smilecore.smile(astronaut, strength=2, selection=sel, model=fixture_models["shift"])
        assert done.faces[0].edited and np.isfinite(done.mask).all()


def test_8_bit_values_in_a_16_bit_array_are_named_when_no_face_is_found(astronaut, fixture_models):
    with pytest.raises(smilecore.NoFaceError, match="16-bit but no value is above 255"):
        smilecore.smile(astronaut.astype(np.uint16), strength=2, model=fixture_models["shift"])
    wide = smilecore.smile(astronaut.astype(np.uint16) * 257, strength=2, model=fixture_models["shift"])
    assert wide.faces[0].edited and wide.image.dtype == np.uint16


def test_smile_model_checks_threads_path_and_providers(fixture_models):
    path = smilecore.load_model(fixture_models["shift"]).path
    for kwargs, needle in (({"threads": "2"}, "threads must be a whole number of threads"),
                           ({"threads": 2.5}, "not 2.5"),
                           ({"providers": [5]}, "providers must be a list of ONNX Runtime provider names"),
                           ({"providers": "CPUExecutionProvider"}, "providers must be a list")):
        with pytest.raises(UsageError, match=needle):
            smilecore.SmileModel(path, **kwargs)
    with pytest.raises(UsageError, match="model path must be a file path, not NoneType"):
        smilecore.SmileModel(None)
    import warnings

    with warnings.catch_warnings():  # (ONNX Runtime warns of a provider it does not have, and goes on without it)
        warnings.simplefilter("ignore")
        smilecore.SmileModel(path, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    smilecore.SmileModel(path, providers=[("CPUExecutionProvider", {})])
    model = smilecore.SmileModel(path, threads=1, providers=["CPUExecutionProvider"])
    crops = np.zeros((2, model.size, model.size, 3), np.uint8)
    with pytest.raises(ValueError, match="one number or one per crop"):
        model.run(crops, np.ones(3, np.float32))
    assert model.run(crops, [1.0, 2.0]).rgb.shape == (2, 3, model.size, model.size)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # (numpy says so of np.matrix itself)
def test_a_numpy_matrix_is_read_as_its_values(astronaut, fixture_models):
    grey = np.ascontiguousarray(astronaut[:, :, 1])
    a = smilecore.smile(np.matrix(grey), strength=2, model=fixture_models["shift"])
    b = smilecore.smile(grey, strength=2, model=fixture_models["shift"])
    assert type(a.image) is np.ndarray and np.array_equal(a.image, b.image)


def test_a_masked_selection_leaves_its_masked_pixels_and_time_spans_are_no_weights():
    from smilecore.arguments import check_selection

    sel = np.ma.array(np.ones((2, 3)), mask=[[1, 0, 0], [0, 0, 1]])
    assert check_selection(sel, 3, 2).tolist() == [[0, 1, 1], [1, 1, 0]]
    with pytest.raises(UsageError, match="not an array of timedelta64"):
        check_selection(np.zeros((2, 3), "m8[s]"), 3, 2)


def test_one_line_escapes_controls_and_reordering_marks_but_not_ordinary_spaces():
    from smilecore.errors import one_line

    screenshot = "Screenshot 2024-01-01 at 10.00.00\u202fAM.jpg"  # (macOS names every screenshot so)
    assert one_line(screenshot) == screenshot
    assert one_line("caf\u00e9\u00a0\U0001F469\u200d\U0001F4BB.jpg") == "caf\u00e9\u00a0\U0001F469\u200d\U0001F4BB.jpg"
    assert one_line("a\nb\tc\x1b[31m.jpg") == "a\\nb\\tc\\x1b[31m.jpg"
    assert one_line("gpj.\u202eexe") == "gpj.\\u202eexe" and one_line("x\u2028y") == "x\\u2028y"
    assert one_line("bad\udc80.jpg") == "bad\\udc80.jpg"
