"""Smile strength over a clip's time: a number, or ``SECONDS:STRENGTH`` points joined by straight lines."""
from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import UsageError
from .arguments import check_strength, plain_number


@dataclass(frozen=True)
class StrengthSchedule:
    """Strength over time: ``(seconds, strength)`` points, linearly interpolated, held before the
    first and after the last.  A single point is a constant strength."""

    points: tuple[tuple[float, float], ...]
    text: str = ""

    @classmethod
    def constant(cls, value: float) -> "StrengthSchedule":
        return cls(((0.0, float(value)),), text=_num(value))

    @classmethod
    def parse(cls, text: str | float | int) -> "StrengthSchedule":
        """``"2"`` or ``"0:0,1.5:2,4:2,5:0"`` (seconds:strength pairs; times increasing)."""
        if isinstance(text, (int, float)) and not isinstance(text, bool):
            return cls.constant(check_strength(text))  # (refuses NaN, infinities and ints past float's range)
        s = str(text).strip()
        if ":" not in s:
            try:
                v = plain_number(s)
            except ValueError:
                raise UsageError(f"strength {text!r} is not a number or a schedule like 0:0,1.5:2,4:2") from None
            if not math.isfinite(v):
                raise UsageError("strength must be a finite number")
            return cls.constant(v)
        points = []
        for part in s.split(","):
            if not part.strip():
                continue
            bits = part.split(":")
            try:
                if len(bits) != 2:
                    raise ValueError
                t, v = plain_number(bits[0]), plain_number(bits[1])
            except ValueError:
                raise UsageError(f"strength schedule {text!r}: {part.strip()!r} is not SECONDS:STRENGTH "
                                 "(e.g. 0:0,1.5:2,4:2,5:0)") from None
            if not (math.isfinite(t) and math.isfinite(v)):
                raise UsageError(f"strength schedule {text!r}: times and strengths must be finite numbers")
            if t < 0:
                raise UsageError(f"strength schedule {text!r}: time {bits[0].strip()} is negative")
            if points and t <= points[-1][0]:
                raise UsageError(f"strength schedule {text!r}: times must increase ({bits[0].strip()} s comes after "
                                 f"{_num(points[-1][0])} s)")
            points.append((t, v))
        if not points:
            raise UsageError(f"strength schedule {text!r} has no SECONDS:STRENGTH pair")
        return cls(tuple(points), text=s)

    @property
    def is_constant(self) -> bool:
        return len({v for _, v in self.points}) == 1

    @property
    def values(self) -> list[float]:
        return [v for _, v in self.points]

    def __call__(self, t: float) -> float:
        pts = self.points
        if t <= pts[0][0]:
            return pts[0][1]
        for (t0, v0), (t1, v1) in zip(pts, pts[1:]):
            if t <= t1:
                return v0 + (v1 - v0) * (t - t0) / (t1 - t0)
        return pts[-1][1]

    def to_json(self):
        return self.points[0][1] if len(self.points) == 1 else [[t, v] for t, v in self.points]


def _num(x: float) -> str:
    return f"{x:g}"
