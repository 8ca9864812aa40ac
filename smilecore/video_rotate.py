"""Points between a video's stored frames and the frames as shown (turned, and perhaps mirrored, by its
display matrix).

The engine detects faces on the upright view (:class:`DisplayView`: ``np.rot90(frame, k)``, then mirrored
left to right where the matrix says so) and tracks and edits them in the stored frame; reports give them
as shown, as photos are given after their EXIF turn.
"""
from __future__ import annotations

import math

import numpy as np


def rotate_points(pts: np.ndarray, k: int, shape: tuple[int, int]) -> np.ndarray:
    """Map points of ``image`` (of ``shape`` (H, W)) to ``np.rot90(image, k)`` (the inverse of
    :func:`unrotate_points`)."""
    h, w = shape
    p = np.asarray(pts, np.float64).copy()
    for j in range(k % 4):
        width = w if j % 2 == 0 else h
        x, y = p[:, 0].copy(), p[:, 1].copy()
        p[:, 0], p[:, 1] = y, (width - 1) - x
    return p


def unrotate_points(pts: np.ndarray, k: int, shape: tuple[int, int]) -> np.ndarray:
    """Map points from ``np.rot90(image, k)`` back to ``image`` (of ``shape`` (H, W))."""
    h, w = shape
    p = np.asarray(pts, np.float64).copy()
    # image_j = rot90(image, j) has width w for even j, h for odd j; one rot90 step maps
    # (x, y) of image_j to (y, width_j - 1 - x) of image_{j+1}; undo the steps last first
    for j in range(k % 4 - 1, -1, -1):
        width = w if j % 2 == 0 else h
        x, y = p[:, 0].copy(), p[:, 1].copy()
        p[:, 0], p[:, 1] = (width - 1) - y, x
    return p


class DisplayView:
    """How a stored frame is shown: turned ``k`` quarter turns counter-clockwise (``np.rot90(frame, k)``),
    then mirrored left to right when ``mirror``. ``matrix``: the display matrix's nine integers as read
    (FFmpeg's ``AV_PKT_DATA_DISPLAYMATRIX``), written back unchanged; None when the clip has none.
    ``rounded_from``: the turn in degrees of a matrix that is no quarter turn (30°, a skew), which the view
    rounds to the nearest quarter; None otherwise."""

    def __init__(self, k: int = 0, mirror: bool = False, matrix: tuple[int, ...] | None = None,
                 rounded_from: float | None = None) -> None:
        self.k, self.mirror, self.matrix, self.rounded_from = k % 4, bool(mirror), matrix, rounded_from

    @classmethod
    def from_matrix(cls, matrix, rotation: float = 0.0) -> DisplayView:
        """The view a display ``matrix`` (nine ints; None: none, then ``rotation``, degrees counter-clockwise) asks
        for; one that is no multiple of a quarter turn (or scales besides) is taken as its nearest quarter turn,
        mirrored where it mirrors."""
        if matrix is None:
            return cls(int(round(rotation / 90.0)) % 4)
        m = tuple(int(v) for v in matrix)
        a, b, c, d = (int(round(m[i] / 65536)) for i in (0, 1, 3, 4))  # shown (x', y') = (a x + c y, b x + d y)
        exact = all(abs(m[i] - 65536 * v) <= 64 for i, v in zip((0, 1, 3, 4), (a, b, c, d)))
        probe = np.arange(6).reshape(2, 3)
        if exact and {abs(a), abs(d)} == {1} and b == c == 0:
            shown = probe[::d, ::a]
        elif exact and {abs(b), abs(c)} == {1} and a == d == 0:
            shown = probe.T[::b, ::c]
        else:  # no quarter turn (30°), or a scale or skew besides: the nearest quarter turn, mirrored or not
            mirror = m[0] * m[4] - m[1] * m[3] < 0  # (a flip: FFmpeg's negates the first column)
            turn = round(-math.degrees(math.atan2(m[1], -m[0] if mirror else m[0])), 1)  # (counter-clockwise)
            off = abs(turn - 90 * round(turn / 90.0)) >= 0.5  # (a scale or a skew alone turns nothing)
            return cls(int(round(turn / 90.0)) % 4, mirror, matrix=m, rounded_from=turn if off else None)
        for k in range(4):
            for mirror in (False, True):
                view = cls(k, mirror)
                if np.array_equal(view.show(probe), shown):
                    return cls(k, mirror, m)
        return cls(int(round(rotation / 90.0)) % 4, matrix=m)  # (unreachable: the eight cover every case)

    def __bool__(self) -> bool:
        return bool(self.k or self.mirror)

    @property
    def degrees(self) -> int:
        """The turn, counter-clockwise (0, 90, 180, 270)."""
        return 90 * self.k

    def show(self, image: np.ndarray) -> np.ndarray:
        """``image`` (a stored frame) as shown."""
        view = np.rot90(image, self.k) if self.k else image
        return np.ascontiguousarray(view[:, ::-1] if self.mirror else view)

    def to_shown(self, pts: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """Points of a stored frame of ``shape`` (H, W) where :meth:`show` puts them."""
        p = rotate_points(pts, self.k, shape)
        if self.mirror:
            p[:, 0] = (shape[1] if self.k % 2 == 0 else shape[0]) - 1 - p[:, 0]
        return p

    def to_stored(self, pts: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """Points of the shown frame back in the stored frame of ``shape`` (H, W)."""
        p = np.asarray(pts, np.float64).copy()
        if self.mirror:
            p[:, 0] = (shape[1] if self.k % 2 == 0 else shape[0]) - 1 - p[:, 0]
        return unrotate_points(p, self.k, shape)
