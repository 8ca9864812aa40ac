"""smilecore.video_planar: planar YUV frames edited in their own planes, the rest bit-identical."""
from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

av = pytest.importorskip("av")

from smilecore.video_planar import PlanarFrame, _write, planar_io, planar_layout  # noqa: E402
from smilecore.video_yuv import Yuv, yuv_coeffs  # noqa: E402

FORMATS_8 = ["yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv440p"]
FORMATS_DEEP = ["yuv420p10le", "yuv422p10le", "yuv444p10le", "yuv420p12le", "yuv422p12le", "yuv444p12le",
                "yuv422p9le", "yuv444p14le", "yuv420p16le"]
FORMATS = FORMATS_8 + FORMATS_DEEP


def _picture(size: tuple[int, int], blur: float = 0.0) -> np.ndarray:
    """A deterministic, textured RGB picture (gradients, colour blocks and noise)."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    rng = np.random.default_rng(7)
    rgb = np.stack([40 + 180 * xx / max(1, w - 1), 60 + 150 * yy / max(1, h - 1),
                    128 + 100 * np.sin(xx / 5.0) * np.cos(yy / 7.0)], axis=2)
    rgb[h // 4:h // 2, w // 5:w // 2] = (200, 30, 60)
    rgb += rng.normal(0, 6, rgb.shape)
    rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    return cv2.GaussianBlur(rgb, (0, 0), blur) if blur else rgb


def _frame(fmt: str, size: tuple[int, int], colorspace: int = 2, color_range: int = 0, blur: float = 0.0):
    """A frame of ``fmt`` made from the test picture by FFmpeg (tagged with its matrix and range)."""
    rgb = _picture(size, blur)
    deep = planar_layout(fmt).bits > 8
    base = av.VideoFrame.from_ndarray(rgb.astype(np.uint16) * 257 if deep else rgb, "rgb48le" if deep else "rgb24")
    fr = base.reformat(format=fmt, dst_colorspace=colorspace, dst_color_range=color_range)
    fr.colorspace, fr.color_range = colorspace, color_range
    return fr


def _planes(frame) -> list[np.ndarray]:
    """Copies of a frame's Y, U, V planes (line padding removed)."""
    dtype = np.uint8 if planar_layout(frame.format.name).bits == 8 else np.uint16
    out = []
    for p in frame.planes[:3]:
        a = np.frombuffer(p, dtype).reshape(p.height, p.line_size // np.dtype(dtype).itemsize)[:, :p.width]
        out.append(a.copy())
    return out


def _footprint(fmt: str, changed: np.ndarray) -> list[np.ndarray]:
    """Per plane, True where a sample covers a pixel of the (H, W) mask ``changed``."""
    lay = planar_layout(fmt)
    fy, fx = 1 << lay.sy, 1 << lay.sx
    h, w = changed.shape
    padded = np.pad(changed, ((0, -h % fy), (0, -w % fx)))
    chroma = padded.reshape(padded.shape[0] // fy, fy, padded.shape[1] // fx, fx).any(axis=(1, 3))
    return [changed, chroma, chroma]


def _patch_mask(size: tuple[int, int], patch: tuple[int, int, int, int]) -> np.ndarray:
    """The pixels of ``patch`` (a box) less a triangle in its corner: an edit whose bounding box
    holds unchanged pixels, as a face's outline does."""
    w, h = size
    x0, y0, x1, y1 = patch
    yy, xx = np.mgrid[0:h, 0:w]
    inside = (xx >= x0) & (xx < x1) & (yy >= y0) & (yy < y1)
    return inside & ((xx - x0) + (yy - y0) >= min(x1 - x0, y1 - y0) // 2)


def _tol(pf: PlanarFrame) -> int:
    return 2 if pf.dtype == np.uint8 else 2 * 257


# ---------------------------------------------------------------------------- formats


def test_layouts():
    lay = planar_layout("yuv422p10le")
    assert (lay.sx, lay.sy, lay.bits, lay.jpeg) == (1, 0, 10, False)
    lay = planar_layout("yuvj420p")
    assert (lay.sx, lay.sy, lay.bits, lay.jpeg) == (1, 1, 8, True)
    assert planar_layout("yuv444p12le").dtype == np.uint16
    for name in ("rgb24", "rgb48le", "nv12", "p010le", "gray", "gray10le", "yuv420p10be", "yuyv422", "yuva420p",
                 "yuv410p", "yuv411p", "gbrp"):
        assert planar_layout(name) is None, name


@pytest.mark.parametrize("fmt", ["rgb24", "nv12", "gray", "yuyv422", "yuv410p"])
def test_other_formats_are_not_handled(fmt):
    fr = av.VideoFrame.from_ndarray(_picture((64, 48)), "rgb24").reformat(format=fmt)
    assert planar_io(fr) is None


# ---------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("size", [(96, 64), (101, 61)])
@pytest.mark.parametrize("fmt", FORMATS)
def test_no_change_is_bit_identical(fmt, size):
    src = _frame(fmt, size)
    pf = planar_io(src)
    assert pf is not None and pf.format == fmt
    box = (3, 5, size[0] - 2, size[1] - 1)
    region = pf.get_region(box)
    assert region.shape == (box[3] - box[1], box[2] - box[0], 3)
    assert region.dtype == (np.uint8 if planar_layout(fmt).bits == 8 else np.uint16)
    pf.put_region(box, region, region.copy())
    out = pf.to_frame()
    assert out.format.name == fmt and (out.width, out.height) == size
    for a, b in zip(_planes(src), _planes(out)):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("size", [(96, 64), (101, 61)])
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("where", ["inside", "odd-start", "frame-edge"])
def test_edit_changes_only_its_footprint(fmt, size, where):
    w, h = size
    src = _frame(fmt, size)
    pf = planar_io(src)
    if where == "inside":  # region and patch on even pixels
        box, patch = (10, 8, 80, 56), (12, 10, 40, 30)
    elif where == "odd-start":  # odd region start; the patch starts on it (blocks reach outside the region)
        box, patch = (33, 21, 77, 60), (33, 21, 52, 40)
    else:  # the region and patch reach the right and bottom edges of the frame
        box, patch = (51, 31, w, h), (61, 41, w, h)
    region = pf.get_region(box)
    new = region.copy()
    top = 255 if new.dtype == np.uint8 else 65535
    colour = (np.array([0.85, 0.35, 0.2]) * top).round().astype(new.dtype)
    px0, py0, px1, py1 = patch
    changed = _patch_mask(size, patch)
    new[changed[box[1]:box[3], box[0]:box[2]]] = colour
    pf.put_region(box, region, new)
    out = pf.to_frame()
    for plane, before, after, inside in zip("YUV", _planes(src), _planes(out), _footprint(fmt, changed)):
        assert np.array_equal(before[~inside], after[~inside]), f"{plane} changed outside the edit"
        assert not np.array_equal(before[inside], after[inside]), f"{plane} not written"
    # read back: the patch's colour (its far corner, away from its edges, where chroma blends)
    back = planar_io(out).get_region(((px0 + px1) // 2, (py0 + py1) // 2, px1 - 2, py1 - 2))
    assert np.abs(back.astype(np.int64) - colour.astype(np.int64)).max() <= _tol(pf)


@pytest.mark.parametrize("fmt", ["yuv420p", "yuv422p10le", "yuv444p12le"])
def test_region_is_the_same_in_any_box(fmt):
    pf = planar_io(_frame(fmt, (96, 64)))
    big = pf.get_region((4, 4, 90, 60))
    for x0, y0, x1, y1 in [(21, 13, 50, 41), (20, 12, 49, 40)]:  # odd and even starts, inside the big one
        small = pf.get_region((x0, y0, x1, y1))
        assert np.array_equal(small, big[y0 - 4:y1 - 4, x0 - 4:x1 - 4])


@pytest.mark.parametrize("fmt", ["yuv420p", "yuv422p", "yuv420p10le"])
def test_edits_go_to_the_new_frame_not_the_decoded_one(fmt):
    src = _frame(fmt, (96, 64))
    before = _planes(src)
    pf = planar_io(src)
    region = pf.get_region((0, 0, 96, 64))
    pf.put_region((0, 0, 96, 64), region, 255 - region if region.dtype == np.uint8 else 65535 - region)
    for a, b in zip(before, _planes(src)):
        assert np.array_equal(a, b)
    assert pf.to_frame() is not src


def test_same_samples_as_the_420_fast_path():
    """For 8-bit 4:2:0, put_region writes what video.py's Yuv path writes for the same pixels."""
    w, h = 96, 64
    src = _frame("yuv420p", (w, h))
    pf = planar_io(src)
    box = (10, 8, 80, 56)
    old = pf.get_region(box)
    new = old.copy()
    new[10:30, 12:40] = (30, 200, 90)
    new[35:37, 5:7] += 9
    pf.put_region(box, old, new)
    # the Yuv path (smilecore/video.py, 8-bit 4:2:0), on planes of the source
    Y, U, V = _planes(src)
    conv = Yuv(*yuv_coeffs(src.colorspace, h), full=False)
    x0, y0, x1, y1 = box
    changed = np.any(old != new, axis=2)
    y_new, u_new, v_new = conv.from_rgb(new)
    np.copyto(Y[y0:y1, x0:x1], y_new, where=changed)
    c2 = changed.reshape(changed.shape[0] // 2, 2, changed.shape[1] // 2, 2).any(axis=(1, 3))
    np.copyto(U[y0 // 2:y1 // 2, x0 // 2:x1 // 2], u_new, where=c2)
    np.copyto(V[y0 // 2:y1 // 2, x0 // 2:x1 // 2], v_new, where=c2)
    for a, b in zip((Y, U, V), _planes(pf.to_frame())):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("fmt", ["yuv422p", "yuv440p", "yuv444p", "yuv420p10le", "yuv422p12le"])
def test_writes_what_a_plain_reference_writes(fmt):
    """Luma where the pixel changed, chroma where any covered pixel did (a block with one changed
    pixel of four is written too), values from the region's new RGB (numpy reference)."""
    w, h = 96, 64
    src = _frame(fmt, (w, h))
    pf = planar_io(src)
    lay = planar_layout(fmt)
    box = (10, 8, 80, 56)
    old = pf.get_region(box)
    new = old.copy()
    new[10:30, 12:40] = new[10:30, 12:40] // 2
    new[35, 5] += 9  # a single pixel: its chroma blocks are written
    new[41, 50:53] += 5
    pf.put_region(box, old, new)
    changed = np.any(old != new, axis=2)
    y_new, u_new, v_new = pf.conv.from_rgb(new)
    fy, fx = 1 << lay.sy, 1 << lay.sx
    cmask = changed.reshape(changed.shape[0] // fy, fy, changed.shape[1] // fx, fx).any(axis=(1, 3))
    Y, U, V = _planes(src)
    x0, y0, x1, y1 = box
    Y[y0:y1, x0:x1][changed] = y_new[changed]
    U[y0 // fy:y1 // fy, x0 // fx:x1 // fx][cmask] = u_new[cmask]
    V[y0 // fy:y1 // fy, x0 // fx:x1 // fx][cmask] = v_new[cmask]
    for a, b in zip((Y, U, V), _planes(pf.to_frame())):
        assert np.array_equal(a, b)


def test_masked_write_in_place_in_any_layout():
    src = np.arange(16, dtype=np.uint8).reshape(4, 4) + 100
    mask = np.zeros((4, 4), np.uint8)
    mask[1, 2] = mask[3, 0] = 255
    for cols in (slice(2, 6), slice(None, None, 2)):  # rows apart (OpenCV writes), columns apart (numpy)
        big = np.zeros((4, 8), np.uint8)
        _write(big[:, cols], src, mask)
        want = np.zeros((4, 8), np.uint8)
        want[:, cols][mask > 0] = src[mask > 0]
        assert np.array_equal(big, want)


# ---------------------------------------------------------------------------- colour


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("colorspace,color_range", [(2, 0), (1, 0), (5, 2)])
def test_rgb_matches_ffmpeg(fmt, colorspace, color_range):
    """Matrix (BT.601 / 709 by tag) and range (limited / full, yuvj) as FFmpeg reads them.  FFmpeg's
    own yuv420p -> rgb24 takes chroma from the nearest sample, so subsampled frames are compared
    with FFmpeg's 4:4:4 upsampling of them (smooth picture: chroma siting aside)."""
    src = _frame(fmt, (96, 64), colorspace, color_range, blur=2.5)
    if fmt.startswith("yuvj"):
        color_range = 2
    ref_fmt = re.sub(r"(420|422|440)", "444", fmt)
    ref = src if ref_fmt == fmt else src.reformat(format=ref_fmt, src_color_range=color_range,
                                                  dst_color_range=color_range)
    ref = ref.to_ndarray(format="rgb24", src_color_range=color_range).astype(np.int64)
    got = planar_io(src).get_region((0, 0, 96, 64))
    got8 = got if got.dtype == np.uint8 else np.round(got / 257.0)
    diff = np.abs(got8.astype(np.int64) - ref)
    assert diff.max() <= (1 if ref_fmt == fmt else 3)
    assert diff.mean() < 0.5


@pytest.mark.parametrize("fmt", ["yuv420p", "yuv422p10le", "yuv444p12le"])
def test_grey_is_the_luma(fmt):
    src = _frame(fmt, (101, 61))
    pf = planar_io(src)
    y = _planes(src)[0].astype(np.int64)
    shift = planar_layout(fmt).bits - 8
    assert pf.grey.dtype == np.uint8 and pf.grey.shape == (61, 101)
    assert np.abs(pf.grey.astype(np.int64) - (y / (1 << shift))).max() <= 0.5
    rgb8 = pf.rgb8()
    assert rgb8.dtype == np.uint8 and rgb8.shape == (61, 101, 3)


# ---------------------------------------------------------------------------- decoded and encoded


@pytest.mark.parametrize("fmt", ["yuv422p", "yuv444p", "yuv420p10le", "yuv422p10le"])
def test_decoded_frames_round_trip_through_a_lossless_encoder(tmp_path, fmt):
    """Frames as the decoder gives them (padded lines) -> edit -> x264 lossless -> decoded again:
    outside the edit's footprint every sample is the decoded one."""
    from PIL import Image

    from smilecore.video_synth import make_clip

    pic = np.asarray(Image.open(__file__.rsplit("/", 2)[0] + "/samples/astronaut.jpg").convert("RGB"))
    clip = make_clip(tmp_path / "in.mkv", pic, size=(200, 120), frames=2, face_height=1.0, pix_fmt=fmt,
                     crf=0, audio=False)
    with av.open(str(clip.path)) as c:
        src = next(c.decode(video=0))
    assert src.format.name == fmt
    pf = planar_io(src)
    box, patch = (41, 21, 150, 100), (61, 41, 101, 81)
    region = pf.get_region(box)
    new = region.copy()
    changed = _patch_mask((200, 120), patch)
    new[changed[box[1]:box[3], box[0]:box[2]]] //= 2
    pf.put_region(box, region, new)
    out = pf.to_frame()
    enc_path = tmp_path / "out.mkv"
    with av.open(str(enc_path), "w") as o:
        s = o.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 200, 120, fmt
        s.codec_context.options = {"qp": "0", "preset": "ultrafast"}
        out.pts = 0
        for p in s.encode(out):
            o.mux(p)
        for p in s.encode(None):
            o.mux(p)
    with av.open(str(enc_path)) as c:
        back = next(c.decode(video=0))
    assert back.format.name == fmt
    for before, after, edited, inside in zip(_planes(src), _planes(back), _planes(out),
                                             _footprint(fmt, changed)):
        assert np.array_equal(after, edited)  # lossless: what was handed to the encoder
        assert np.array_equal(before[~inside], after[~inside])


@pytest.mark.parametrize("fmt, codec", [("yuv422p", None), ("yuv420p10le", None), ("yuv444p10le", "hevc")])
def test_smile_video_at_crf_0_leaves_every_sample_outside_the_face(tmp_path, fmt, codec):
    """The whole command: 4:2:2 and 10-bit clips are edited in their own planes and --crf 0 is lossless
    for them too (x264 qp 0, x265 lossless), so outside the face every sample is the source's."""
    import sys
    from pathlib import Path

    from smilecore.video import smile_video
    from smilecore.video_synth import make_clip

    sys.path.insert(0, str(Path(__file__).parent))
    from portrait import neutral_astronaut

    clip = make_clip(tmp_path / "in.mkv", np.array(neutral_astronaut()), size=(320, 240), frames=6, face_height=0.95,
                     pix_fmt=fmt, crf=0, amplitude=(0, 0), audio=False)
    res = smile_video(clip.path, tmp_path / "out.mkv", strength=2, crf=0, codec=codec)
    x0, y0, x1, y1 = res.tracks[0]["box"]
    s = x1 - x0
    face = np.zeros((240, 320), bool)
    face[max(0, int(y0 - 0.6 * s)):int(y1 + 0.9 * s), max(0, int(x0 - 0.6 * s)):int(x1 + 0.6 * s)] = True
    with av.open(str(clip.path)) as a, av.open(str(tmp_path / "out.mkv")) as b:
        pairs = list(zip(a.decode(video=0), b.decode(video=0)))
    assert len(pairs) == 6 and all(fb.format.name == fmt for _, fb in pairs)
    for fa, fb in pairs:
        inside = _footprint(fmt, face)
        pa, pb = _planes(fa), _planes(fb)
        assert (pa[0][face] != pb[0][face]).sum() > 100  # the face smiled
        for before, after, ins in zip(pa, pb, inside):
            assert np.array_equal(before[~ins], after[~ins])
