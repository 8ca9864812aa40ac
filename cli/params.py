"""Click parameter types of the ``smile`` commands whose messages say what to give."""
from __future__ import annotations

import click


class PixelCount(click.ParamType):
    """A pixel limit (``--max-pixels``, ``SMILE_MAX_PIXELS``): a whole number of pixels, 1 or more."""

    name = "pixels"

    def convert(self, value, param, ctx) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:  # (digits only, as SMILE_MAX_PIXELS is read everywhere else: smilecore.decode.env_max_pixels)
            text = str(value).strip()
            number = int(text) if text.isascii() and text.isdigit() else None
        if number is None or number < 1:
            self.fail(f"{value!r} is not a number of pixels: give a whole number, 1 or more (50000000 for 50 MP)",
                      param, ctx)
        return number
