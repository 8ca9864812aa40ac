"""Opening a clip holds FFmpeg's decoders to 8K pictures (smilecore/video_input.py): FFmpeg decodes a picture of
every stream while it probes a file, and a 2 MB MOV of eight 16000 x 16000 PNG streams took 2.15 GB to open.

The peak memory is read in a child process, from /proc/self/status (VmHWM): getrusage in a spawned child also
counts what the parent had."""
from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from fractions import Fraction
from pathlib import Path

import pytest

av = pytest.importorskip("av")

from smilecore.video_input import MAX_FRAME_PIXELS, READ_OPTIONS, declared_size, open_input  # noqa: E402
from smilecore.video_synth import make_clip  # noqa: E402

SIDE = 16000  #: a picture of 256 MP (256 MB in grey), far above 8K's 33 MP
#: Most a child may hold at its peak (MB) to refuse a clip (71 with the limit, 559 without: the two streams' pictures)
#: and to edit one (158 with the limit, 318 without: its cover's picture).
REFUSE_MB, EDIT_MB = 150, 250
#: What the child runs: smile_video at strength 0 (no network), its outcome and its peak memory as JSON.
CHILD = """
import json, sys
from smilecore.errors import SmileError
from smilecore.video import smile_video
try:
    r = smile_video(sys.argv[1], sys.argv[2], strength=0, keep_unchanged=True)
    out = {"code": "ok", "notes": r.notes, "copied": r.streams_copied}
except SmileError as exc:
    out = {"code": exc.code, "message": str(exc)}
out["peak_mb"] = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) // 1024
print(json.dumps(out))
"""


def grey_png(width: int, height: int) -> bytes:
    """A black 8-bit grey PNG of ``width`` x ``height``, compressed row by row (its pixels are never held)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(9)
    row = bytes(width + 1)  # (filter byte, then the row)
    data = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", data) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def huge_png() -> bytes:
    return grey_png(SIDE, SIDE)


def _png_stream(out, cover: bool = False):
    """A PNG video stream of SIDE x SIDE grey pictures in ``out`` (MOV, MP4), cover art if ``cover``."""
    s = out.add_stream("png", rate=25)
    s.width = s.height = SIDE
    s.pix_fmt = "gray"
    if cover:
        s.disposition = av.stream.Disposition.attached_pic
    return s


def _mux(out, stream, data: bytes) -> None:
    p = av.Packet(data)
    p.pts = p.dts = 0
    p.duration, p.time_base, p.stream = 1, Fraction(1, 25), stream
    out.mux(p)


def _child(src: Path, dst: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(src), str(dst)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_two_streams_of_16000_px_pictures_are_refused_in_little_memory(huge_png, tmp_path):
    src = tmp_path / "two.mov"
    with av.open(str(src), "w") as out:
        streams = [_png_stream(out) for _ in range(2)]
        for s in streams:
            _mux(out, s, huge_png)
    assert src.stat().st_size < 1_000_000
    res = _child(src, tmp_path / "out.mkv")
    assert res["code"] == "too_large", res  # (by the size the container declares: not taken for damage)
    assert "\n" not in res["message"] and res["message"].endswith(
        f"two.mov: each frame is {SIDE}x{SIDE} = 256 MP, above the limit of 33.2 MP (8K UHD, the most a video may have)")
    assert res["peak_mb"] < REFUSE_MB, res
    assert not (tmp_path / "out.mkv").exists()
    with open_input(av, src) as c:  # (no decoder made its pictures: FFmpeg knows no size then)
        assert [s.codec_context.width for s in c.streams] == [0, 0]
    assert declared_size(av, src, 1) == (SIDE, SIDE)


@pytest.fixture(scope="module")
def with_cover(picture, huge_png, tmp_path_factory) -> Path:
    """An MP4 clip of a face (10 frames, 320 x 240) whose cover art is a 16000 x 16000 PNG."""
    folder = tmp_path_factory.mktemp("cover")
    clip = make_clip(folder / "plain.mp4", picture, size=(320, 240), frames=10, face_height=0.95, audio=False)
    path = folder / "cover.mp4"
    with av.open(str(clip.path)) as i, av.open(str(path), "w") as o:
        vs = o.add_stream_from_template(i.streams.video[0])
        cover = _png_stream(o, cover=True)
        for p in i.demux(i.streams.video[0]):
            if p.dts is not None:
                p.stream = vs
                o.mux(p)
        _mux(o, cover, huge_png)
    return path


def test_a_cover_over_8k_is_not_read_matroska_keeps_it_as_an_attachment(with_cover, huge_png, tmp_path):
    res = _child(with_cover, tmp_path / "o.mkv")
    assert res["code"] == "ok" and res["peak_mb"] < EDIT_MB, res
    assert res["copied"] == ["video #1 (png)"] and res["notes"] == []
    with av.open(str(tmp_path / "o.mkv")) as c:
        covers = [s for s in c.streams if s.disposition & av.stream.Disposition.attached_pic]
        assert [s.metadata.get("filename") for s in covers] == ["cover.png"]
        assert [bytes(p) for p in c.demux(covers[0]) if p.size] == [huge_png]  # (its bytes, never decoded)


def test_a_cover_over_8k_is_left_out_of_mp4_with_a_note(with_cover, tmp_path):
    res = _child(with_cover, tmp_path / "o.mp4")
    assert res["code"] == "ok" and res["peak_mb"] < EDIT_MB, res
    assert res["notes"] == ["the cover art (stream #1) was left out: its picture is larger than 8K UHD (or damaged) "
                            "and was not read (write .mkv to keep it as an attachment)"]
    with av.open(str(tmp_path / "o.mp4")) as c:
        assert [s.type for s in c.streams] == ["video"]


def test_one_rule_for_the_frame_limit():
    import smilecore.video as V

    assert V.MAX_FRAME_PIXELS == MAX_FRAME_PIXELS == 7680 * 4320
    assert READ_OPTIONS == {"max_pixels": str(MAX_FRAME_PIXELS)}
