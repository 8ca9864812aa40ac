"""A video's faces as ``smile VIDEO --faces`` numbers them, found by the same tracking with nothing edited
(``smile detect clip.mp4``)."""
from __future__ import annotations

import os
from typing import Callable

from .arguments import check_min_face
from .atomic import work_folder
from .face import smaller_than_asked
from .video import Progress, VideoResult, smile_video


def video_faces(src: str | os.PathLike, min_face: int | None = None, model=None, max_pixels: int | None = None,
                progress: Callable[[Progress], None] | None = None) -> VideoResult:
    """The faces of the video ``src`` with the indices ``smile_video(faces=...)`` takes, in ``.tracks`` as
    :attr:`VideoResult.tracks` lists them (``index``, ``box`` and ``score`` when first seen, ``first_frame``,
    ``last_frame``, ``detections``), found by the same tracking with nothing edited (the clip is re-encoded,
    fast, into a temporary folder, then removed; ``.output`` is None); ``.notes`` says what reading it found
    (damaged packets, say).  Tracks smaller than ``min_face`` are left out."""
    min_face = check_min_face(min_face)
    with work_folder("smile-faces-") as tmp:
        res = smile_video(src, tmp / "faces.mkv", strength=0.0, model=model, codec="h264", crf=51,
                          preset="ultrafast", max_pixels=max_pixels, progress=progress, min_face=min_face)
    small = smaller_than_asked(min_face) if min_face is not None else None
    res.tracks = [t for t in res.tracks if small is None or t.get("reason") != small]
    res.output = None
    res.notes = list(res.read_notes)  # (of reading, not of writing)
    return res
