"""Synthetic test clips with known motion, and the flicker measure (tests and benchmarks).

:func:`make_clip` moves a picture (the bundled astronaut) across a plain canvas along a
known, smooth, sub-pixel path and writes it as a video with a sine tone, so no dataset face
is ever needed.  :func:`mouth_flicker` undoes that known motion for each frame and measures
how much a region (the mouth) changes from one frame to the next.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from .video_input import open_input


@dataclass
class Clip:
    """What :func:`make_clip` wrote."""

    path: Path
    frames: int
    fps: Fraction
    size: tuple[int, int]  #: (width, height)
    matrices: list[np.ndarray]  #: per frame, 2x3 picture -> canvas
    audio_packets: int


def motion_matrix(t: float, scale: float, origin: tuple[float, float], amplitude: tuple[float, float],
                  period: float) -> np.ndarray:
    """Picture -> canvas affine at time ``t``: a scaled picture drifting on a smooth loop."""
    ox = origin[0] + amplitude[0] * math.sin(2 * math.pi * t / period)
    oy = origin[1] + amplitude[1] * math.sin(4 * math.pi * t / period + 0.7)
    return np.array([[scale, 0.0, ox], [0.0, scale, oy]], np.float64)


def make_clip(path: str | os.PathLike, picture: np.ndarray, size: tuple[int, int] = (320, 240), frames: int = 64,
              fps: int | Fraction = 25, face_height: float = 0.8, amplitude: tuple[float, float] = (12.0, 5.0),
              period: float = 3.0, audio: bool = True, codec: str = "libx264", pix_fmt: str = "yuv420p",
              crf: int = 20, container_format: str | None = None, rotation: int = 0, still_after: int | None = None,
              hide: tuple[int, int] | None = None, enter: tuple[int, int] | None = None,
              cut_to: tuple[int, np.ndarray] | None = None, sample_rate: int = 48000, mirror: bool = False,
              timecode: str | None = None, fields: str | None = None) -> Clip:
    """Write a clip of ``frames`` frames: ``picture`` (RGB uint8) scaled to ``face_height`` of the
    canvas height, moving by ``amplitude`` pixels on a ``period``-second loop, over a grey
    canvas; a 440 Hz tone on an AAC (or Opus for webm) track when ``audio``.  ``still_after``:
    frame from which the picture stops moving.  ``hide = (a, b)``: frames a..b-1 show no picture.
    ``enter = (a, b)``: the picture walks in from beyond the right edge, starting at frame a
    (outside before it) and reaching its place at frame b.  ``cut_to = (a, other)``: from frame a on,
    the clip cuts to ``other`` (RGB uint8), scaled to fill the frame. ``rotation`` (degrees counter-clockwise)
    and ``mirror``: the display matrix (the turn, then a mirror left to right), the frames stored so that it
    shows them upright. ``timecode`` ("HH:MM:SS:FF"): a timecode track (MOV and MP4), as cameras write.
    ``fields`` (``"tff"`` or ``"bff"``, x264 only): coded interlaced in that field order, as camcorders write 1080i."""
    import av

    path = Path(path)
    w, h = size
    fps = Fraction(fps)
    scale = face_height * h / picture.shape[0]
    origin = ((w - picture.shape[1] * scale) / 2, (h - picture.shape[0] * scale) / 2)
    matrices = []
    out = av.open(str(path), "w", format=container_format)
    vs = out.add_stream(codec, rate=fps)
    sideways = rotation % 180 != 0  # stored turned by a quarter: width and height swap
    vs.width, vs.height, vs.pix_fmt = (h, w, pix_fmt) if sideways else (w, h, pix_fmt)
    if codec in ("libx264", "libx265"):
        vs.codec_context.options = {"crf": str(crf), "preset": "ultrafast"}
        if codec == "libx265":
            vs.codec_context.options = {"crf": str(crf), "preset": "ultrafast", "x265-params": "log-level=error"}
        if fields and codec == "libx264":
            vs.codec_context.options = {**vs.codec_context.options, "x264-params": f"{fields}=1"}
            vs.codec_context.field_order = 2 if fields == "tff" else 3
    elif codec.startswith("libvpx"):
        vs.codec_context.options = {"crf": str(crf + 10), "b": "1M", "deadline": "realtime", "cpu-used": "8"}
    if rotation or mirror:
        vs.set_display_rotation(rotation, hflip=mirror)
    if timecode:
        vs.metadata["timecode"] = timecode
    aus = None
    if audio:
        acodec = "libopus" if (container_format == "webm" or path.suffix == ".webm") else "aac"
        aus = out.add_stream(acodec, rate=sample_rate)
        aus.layout = "mono"
    bg = np.full((h, w, 3), 118, np.uint8)
    bg[:, :, 2] = 140
    for i in range(frames):
        t = i / float(fps)
        ti = t if still_after is None else min(t, still_after / float(fps))
        m = motion_matrix(ti, scale, origin, amplitude, period)
        if enter is not None and i < enter[1]:  # still walking in: shifted right, beyond the edge before a
            left = (enter[1] - max(i, enter[0])) / max(1, enter[1] - enter[0])
            m[0, 2] += left * (w - m[0, 2])
        matrices.append(m)
        canvas = bg.copy()
        if not (hide and hide[0] <= i < hide[1]):
            warped = cv2.warpAffine(picture, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            inside = cv2.warpAffine(np.full(picture.shape[:2], 255, np.uint8), m, (w, h), flags=cv2.INTER_LINEAR)
            a = (inside.astype(np.float32) / 255.0)[..., None]
            canvas = np.rint(a * warped + (1 - a) * canvas).astype(np.uint8)
        if cut_to is not None and i >= cut_to[0]:
            canvas = cv2.resize(cut_to[1], (w, h), interpolation=cv2.INTER_AREA)
        if rotation or mirror:
            # the stored picture is turned (and mirrored) so that the display matrix puts it upright
            canvas = np.ascontiguousarray(np.rot90(canvas[:, ::-1] if mirror else canvas, -(rotation // 90)))
        fr = av.VideoFrame.from_ndarray(canvas, format="rgb24")
        fr.pts = i
        for p in vs.encode(fr):
            out.mux(p)
    for p in vs.encode(None):
        out.mux(p)
    n_audio = 0
    if aus is not None:
        spf = aus.codec_context.frame_size or 1024
        total = int(round(frames / float(fps) * sample_rate))
        for k, s0 in enumerate(range(0, total, spf)):
            n = min(spf, total - s0)
            x = 0.3 * np.sin(2 * np.pi * 440.0 * (np.arange(s0, s0 + n) / sample_rate)).astype(np.float32)
            af = av.AudioFrame.from_ndarray(x[None, :], format="fltp", layout="mono")
            af.sample_rate = sample_rate
            af.pts = s0
            for p in aus.encode(af):
                out.mux(p)
                n_audio += 1
        for p in aus.encode(None):
            out.mux(p)
            n_audio += 1
    out.close()
    return Clip(path, frames, fps, size, matrices, n_audio)


def read_frames(path: str | os.PathLike, fmt: str = "rgb24") -> list[np.ndarray]:
    """Every decoded frame of the first video stream (as stored, rotation not applied)."""
    import av

    with open_input(av, path) as c:
        return [f.to_ndarray(format=fmt) for f in c.decode(video=0)]


def packets(path: str | os.PathLike, kind: str = "audio") -> list[tuple[int | None, bytes]]:
    """``(pts, payload)`` of every packet of the streams of one kind (to compare remuxed audio)."""
    import av

    with open_input(av, path) as c:
        streams = [s for s in c.streams if s.type == kind]
        if not streams:
            return []
        return [(p.pts, bytes(p)) for p in c.demux(*streams) if p.size]


def mouth_box(picture: np.ndarray) -> tuple[int, int, int, int]:
    """The mouth region of a picture, in its own pixels (from its detected landmarks)."""
    import smilecore

    faces = smilecore.detect_faces(picture)
    if not faces:
        raise ValueError("no face in the picture")
    lm = faces[0].landmarks
    eye_r, eye_l, nose = lm[0:2].mean(0), lm[2:4].mean(0), lm[4]
    d = float(np.linalg.norm(eye_r - eye_l))
    cx, cy = (eye_r[0] + eye_l[0]) / 2, nose[1] + 0.45 * d
    return int(cx - 0.55 * d), int(cy - 0.3 * d), int(cx + 0.55 * d), int(cy + 0.45 * d)


def mouth_flicker(frames: list[np.ndarray], matrices: list[np.ndarray], box: tuple[int, int, int, int]) -> float:
    """Mean absolute frame-to-frame change (luma, 0..255) of ``box`` (picture pixels) after
    undoing each frame's known motion (``matrices``: picture -> frame)."""
    x0, y0, x1, y1 = box
    crops = []
    for fr, m in zip(frames, matrices):
        grey = fr if fr.ndim == 2 else cv2.cvtColor(fr, cv2.COLOR_RGB2GRAY)
        shift = np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]], np.float64)
        mm = np.vstack([m, [0, 0, 1]]) @ shift  # crop pixel -> frame pixel
        crops.append(cv2.warpAffine(grey.astype(np.float32), mm[:2], (x1 - x0, y1 - y0),
                                    flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP))
    diffs = [float(np.mean(np.abs(b - a))) for a, b in zip(crops, crops[1:])]
    return float(np.mean(diffs)) if diffs else 0.0
