"""libtiff's messages (smilecore/libtiff_log.py): a damaged TIFF's reason in libtiff's words, not lines on stderr;
the handlers set once for the process, passing on what libtiff says outside Smile's reading, surviving a new import
of smilecore; a Python without ctypes still reads photos."""
from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from smilecore import libtiff_log
from smilecore.decode import load_image
from smilecore.errors import InputError

_Y, _X = np.mgrid[0:64, 0:64]
#: A 64 x 64 RGB pattern.
_GRADIENT = np.stack([_X * 4, _Y * 4, (_X * _Y) % 256], axis=-1).astype(np.uint8)


def _damaged_lzw_tiff(p: Path) -> Path:
    """An LZW TIFF whose strip holds codes LZW never made, which libtiff reports ("Using code not yet in table")."""
    Image.fromarray(_GRADIENT).save(p, compression="tiff_lzw")
    data = bytearray(p.read_bytes())
    with Image.open(p) as im:
        at, size = im.tag_v2[273][0], im.tag_v2[279][0]
    rng = random.Random(0)
    data[at + 4:at + size] = bytes(rng.randrange(256) for _ in range(size - 4))  # (LZW codes never seen)
    p.write_bytes(data)
    return p


def test_libtiffs_words_are_the_reason_not_lines_on_stderr(tmp_path: Path, capfd):
    """Pillow decodes a compressed TIFF with libtiff, which printed its complaint on stderr above Smile's line
    (``tempfile.tif: Using code not yet in table.``) while the error gave "decoder error -2" as the reason."""
    p = _damaged_lzw_tiff(tmp_path / "damaged.tif")
    capfd.readouterr()
    with pytest.raises(InputError) as err:
        load_image(p)
    assert "damaged.tif" in str(err.value) and "libtiff: " in str(err.value) and "decoder error" not in str(err.value)
    assert capfd.readouterr().err == ""
    res = subprocess.run([sys.executable, "-m", "smile_cli", str(p), "--out-dir", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 4 and res.stderr.count("\n") == 1 and "libtiff: " in res.stderr, res.stderr


def test_a_tiff_libtiff_reads_past_an_error_in_says_so_in_a_note(tmp_path: Path, capfd):
    """libtiff reads on past some damage (a JPEG strip's stray marker) and Pillow gives the picture: libtiff's line
    was on stderr, then, once collected, nowhere. It is a note; a valid TIFF has none."""
    p = tmp_path / "jpeg.tif"
    y, x = np.mgrid[0:256, 0:256]
    Image.fromarray(np.dstack([x % 256, y % 256, (x + y) % 256]).astype(np.uint8)).save(p, compression="jpeg")
    assert not [n for n in load_image(p)[1].notes if "libtiff" in n]
    with Image.open(p) as im:
        at, size = im.tag_v2[273][0], im.tag_v2[279][0]
    data = bytearray(p.read_bytes())
    rng = random.Random(0)
    for _ in range(40):
        data[at + rng.randrange(size // 3, size)] = rng.randrange(256)
    p.write_bytes(data)
    capfd.readouterr()

    img, info = load_image(p)
    assert img.size == (256, 256) and capfd.readouterr().err == ""
    if libtiff_log._install():  # (where libtiff can be reached)
        assert [n for n in info.notes if "jpeg.tif: libtiff reported an error" in n and "damaged" in n], info.notes


def test_libtiffs_messages_outside_a_photo_go_where_they_went_before(tmp_path: Path):
    """libtiff's handlers are the whole process's: a library sharing Pillow's libtiff (GDAL in a conda environment
    sets its own) lost every message once Smile had read a TIFF, as they were written on stderr instead. Outside
    Smile's reading, they are passed on to the handler set before."""

    if not libtiff_log._install():
        pytest.skip("this Pillow's libtiff cannot be reached (built inside Pillow)")
    code = ("import ctypes, sys\n"
            "from PIL import Image, _imaging\n"
            "kind = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p)\n"
            "lib = ctypes.CDLL(_imaging.__file__)\n"
            "lib.TIFFSetErrorHandler.argtypes = [kind]\n"
            "seen = []\n"
            "theirs = kind(lambda module, fmt, args: seen.append(fmt))\n"
            "lib.TIFFSetErrorHandler(theirs)\n"
            "from smilecore.decode import load_image\n"
            "try:\n    load_image(sys.argv[1])\nexcept Exception as exc:\n    print(exc)\n"
            "try:\n    Image.open(sys.argv[1]).load()\nexcept OSError:\n    pass\n"
            "print(seen)\n")
    p = _damaged_lzw_tiff(tmp_path / "damaged.tif")
    res = subprocess.run([sys.executable, "-c", code, str(p)], capture_output=True, text=True, timeout=120)
    lines = res.stdout.splitlines()
    assert res.returncode == 0 and len(lines) == 2 and "libtiff: Using code not yet in table" in lines[0], res
    assert "Using code not yet in table" in lines[1] and res.stderr == "", res


def test_smilecore_imported_again_leaves_libtiff_no_freed_handler(tmp_path: Path):
    """libtiff keeps its handlers for the whole process: once smilecore was dropped from ``sys.modules`` (as tests
    and reloading tools do), imported again and collected, the next libtiff message called a freed callback (the
    process died: "Illegal instruction"). The handlers live with Pillow, and a new import uses them."""
    code = ("import gc, sys\n"
            "from PIL import Image\n"
            "def purge():\n"
            "    for name in [m for m in sys.modules if m.startswith('smilecore')]:\n"
            "        del sys.modules[name]\n"
            "    gc.collect()\n"
            "for round in range(3):\n"
            "    from smilecore.decode import load_image\n"
            "    try:\n        load_image(sys.argv[1])\n    except Exception as exc:\n        print(exc)\n"
            "    del load_image\n"
            "    purge()\n"
            "    try:\n        Image.open(sys.argv[1]).load()\n    except OSError:\n        print('raw')\n")
    p = _damaged_lzw_tiff(tmp_path / "damaged.tif")
    res = subprocess.run([sys.executable, "-c", code, str(p)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res
    lines = res.stdout.splitlines()
    assert len(lines) == 6 and lines[1::2] == ["raw"] * 3, res

    if libtiff_log._install():  # (where libtiff can be reached, its words are the reason every time)
        assert all("libtiff: Using code not yet in table" in line for line in lines[0::2]), res


def test_a_python_without_ctypes_still_reads_and_refuses_tiffs(tmp_path: Path):
    """libtiff's messages are caught through ctypes, which some Pythons lack: smilecore failed to import there."""
    code = ("import sys\n"
            "sys.modules['ctypes'] = None\n"
            "from smilecore.decode import load_image\n"
            "print(load_image(sys.argv[1])[0].size)\n"
            "try:\n    load_image(sys.argv[2])\nexcept Exception as exc:\n    print(type(exc).__name__, exc)\n")
    good = tmp_path / "good.tif"
    Image.fromarray(_GRADIENT).save(good, compression="tiff_lzw")
    bad = _damaged_lzw_tiff(tmp_path / "damaged.tif")
    res = subprocess.run([sys.executable, "-c", code, str(good), str(bad)], capture_output=True, text=True, timeout=120)
    lines = res.stdout.splitlines()
    assert res.returncode == 0 and lines[0] == "(64, 64)" and lines[1].startswith("InputError "), res
    assert "damaged.tif: the image data is corrupt or truncated" in lines[1], res
