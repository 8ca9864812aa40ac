"""smilecore.pixels: the one 16 -> 8-bit conversion and the 8-bit RGB view."""
import numpy as np
import pytest

from smilecore.errors import InputError
from smilecore.pixels import from_array, to_8bit, to_rgb8


def test_to_8bit_rounds_every_16_bit_value_to_the_nearest_8_bit_one():
    v = np.arange(65536, dtype=np.uint16)
    got = to_8bit(v)
    assert got.dtype == np.uint8 and got.shape == v.shape
    assert np.array_equal(got, np.rint(v / 257.0).astype(np.uint8))
    assert np.array_equal(to_8bit(np.arange(256, dtype=np.uint16) * 257), np.arange(256))  # 8-bit values widened come back


@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 1), (5, 7, 2), (5, 7, 3), (5, 7, 4), (0, 3, 3)])
def test_to_8bit_keeps_the_shape(shape):
    a = np.full(shape, 65535, np.uint16)
    out = to_8bit(a)
    assert out.shape == shape and out.dtype == np.uint8 and (out == 255).all()


def test_to_8bit_leaves_8_bit_alone_and_refuses_other_types():
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert to_8bit(a) is a
    with pytest.raises(InputError, match="float32"):
        to_8bit(np.zeros((2, 2), np.float32))


def test_to_rgb8_makes_three_contiguous_8_bit_channels():
    grey_alpha = np.dstack([np.full((4, 6), 257 * 10, np.uint16), np.full((4, 6), 65535, np.uint16)])
    rgb = to_rgb8(grey_alpha)
    assert rgb.shape == (4, 6, 3) and rgb.dtype == np.uint8 and (rgb == 10).all() and rgb.flags.c_contiguous
    rgba = np.arange(4 * 6 * 4, dtype=np.uint8).reshape(4, 6, 4)
    assert np.array_equal(to_rgb8(rgba), rgba[:, :, :3])


def test_from_array_refuses_what_is_not_an_image():
    with pytest.raises(InputError, match="dtype float64"):
        from_array(np.zeros((4, 4)))
    with pytest.raises(InputError, match=r"shape \(4, 4, 5\)"):
        from_array(np.zeros((4, 4, 5), np.uint8))
    assert from_array(np.zeros((4, 4), np.uint8)).array.shape == (4, 4, 1)
