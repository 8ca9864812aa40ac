"""What players and photo libraries read beside the pixels: interlaced fields, the HEVC sample entry Apple's
players take, and the metadata keys phones write.

* **Interlaced video** (camcorders' 1080i AVCHD ``.mts``, DV, broadcast ``.ts``, DVD) is edited as whole frames,
  both fields woven together, and must be coded as interlaced again, in the same field order: written as
  progressive, players no longer deinterlace it and every moving edge shows its comb teeth.
  :func:`field_order` reads the source's order, :func:`code_fields` asks the encoder for it (x264's ``tff`` /
  ``bff``, MPEG-4's interlaced DCT and motion) and tags the stream (MOV's ``fiel``, Matroska's ``FieldOrder``).
  VP9 and VP8 have no interlaced coding, x265 none FFmpeg can use (:data:`FIELDLESS`), x264 none for a height
  whose fields would split a row of 4:2:0 chroma: a note says the result is progressive.
* **HEVC in MP4 and MOV** is tagged ``hvc1`` (parameter sets in the sample entry) rather than FFmpeg's default
  ``hev1``, which QuickTime, iPhones and iPads refuse to play (:func:`hevc_tag`).
* **Phones' metadata keys** (an iPhone's ``com.apple.quicktime.location.ISO6709``, ``…creationdate``, ``…make``,
  ``…model``, ``…software``; Android's ``com.android.version``, ``com.android.capture.fps``) live in MOV/MP4's
  ``keys`` atom, which FFmpeg writes only when asked (``movflags=use_metadata_tags``): without it the result lost
  where and when the clip was taken, and on what. :func:`container_metadata` asks for it where the source has
  such keys.
* **HDR10's light levels** (the mastering display's colours and brightness, the brightest pixel and frame: SEI
  messages in the stream, which phones, action cameras and drones write) are handed to x265 and x264
  (:func:`light_levels`): the frames Smile encodes are new ones, without the decoded frames' side data, and
  players tone-mapped the result with guessed levels.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from .video_input import first_side_data

#: FFmpeg's ``AVFieldOrder`` values whose top field is shown first (``TT``, ``BT``) and bottom first (``BB``,
#: ``TB``); 0 is unknown and 1 progressive.
TOP_FIRST, BOTTOM_FIRST = (2, 5), (3, 4)
#: The ``AVFieldOrder`` written for each order: coded and shown in it (``TT``, ``BB``).
WRITTEN = {"tff": 2, "bff": 3}
#: x265's names for x264's HDR10 options (:func:`light_levels`).
X265_NAMES = {"mastering-display": "master-display", "cll": "max-cll"}
#: Encoders that code no interlaced video here, and why. (x265's own ``interlace`` marks every picture as one
#: field; its command line splits frames into fields, its library as FFmpeg uses it does not: each whole frame
#: was said to be a field, which a player shows at half the rate, two frames woven into one.)
FIELDLESS = {"libvpx-vp9": "vp9 has no interlaced coding", "libvpx": "vp8 has no interlaced coding",
             "libx265": "hevc is written as frames, which FFmpeg's x265 cannot mark as interlaced"}


def field_order(stream) -> str | None:
    """``"tff"`` (top field first) or ``"bff"`` for an interlaced video ``stream`` (PyAV), as its codec
    parameters say (standard-definition DV, which FFmpeg gives no order: bottom first, as the DV standard has
    it); ``None`` for progressive video or an order not given."""
    cc = stream.codec_context
    order = getattr(cc, "field_order", 0) if cc is not None else 0
    if not order and cc is not None and cc.name == "dvvideo" and cc.height in (480, 576):
        return "bff"
    return "tff" if order in TOP_FIRST else "bff" if order in BOTTOM_FIRST else None


def coded_like_source(av, src, vstream, encoder: str, codec_context, options: dict[str, str], notes: list[str]) -> None:
    """Ask the encoder for what the source's coding carries beside its pixels: its fields (:func:`code_fields`)
    and HDR10 light levels (:func:`light_levels`)."""
    code_fields(av, vstream, encoder, codec_context, options, notes)
    params = light_levels(av, src, vstream.index) if encoder in ("libx264", "libx265") else {}
    if params:
        key = "x265-params" if encoder == "libx265" else "x264-params"
        if encoder == "libx265":  # (x265's names for them)
            params = {X265_NAMES.get(k, k): v for k, v in params.items()}
        text = ":".join(f"{k}={v}" for k, v in params.items())
        options[key] = f"{options[key]}:{text}" if options.get(key) else text


def light_levels(av, src, index: int) -> dict[str, str]:
    """x264's ``mastering-display`` and ``cll`` options (x265: :data:`X265_NAMES`) for the HDR10 light levels of
    the first frame of video stream ``index`` of ``src`` (empty where it has none)."""
    data = first_side_data(av, src, index)[0]
    display, light = data.get("MASTERING_DISPLAY_METADATA", b""), data.get("CONTENT_LIGHT_LEVEL", b"")
    params = {}
    if len(display) == 88:  # (AVMasteringDisplayMetadata: R, G, B and white point x/y, min and max luminance, as
        v = np.frombuffer(display, np.int32)  # fractions; then whether the primaries and the luminance are given)

        def at(i: int, unit: int) -> int:
            return round(Fraction(int(v[2 * i]), int(v[2 * i + 1]) or 1) * unit)

        if v[20] and v[21]:  # (x264 and x265: chromaticity in 1/50000, luminance in 1/10000 cd/m²)
            params["mastering-display"] = (f"G({at(2, 50000)},{at(3, 50000)})B({at(4, 50000)},{at(5, 50000)})"
                                           f"R({at(0, 50000)},{at(1, 50000)})WP({at(6, 50000)},{at(7, 50000)})"
                                           f"L({at(9, 10000)},{at(8, 10000)})")
    if len(light) == 8:
        params["cll"] = ",".join(str(int(n)) for n in np.frombuffer(light, np.uint32))
    return params


def code_fields(av, vstream, encoder: str, codec_context, options: dict[str, str], notes: list[str]) -> None:
    """Code the output as interlaced, in ``vstream``'s field order, where the source is interlaced:
    ``encoder``'s options go into ``options`` (or its flags into ``codec_context``) and the order onto
    ``codec_context`` (its size and pixel format set); where the encoder cannot, ``notes`` says so."""
    order = field_order(vstream)
    if order is None:
        return
    h, planes = codec_context.height, av.VideoFormat(codec_context.pix_fmt, codec_context.width, codec_context.height).components
    lines = 4 if any(p.height < h for p in planes) else 2  # (x264: each field whole rows of its colour planes)
    why = (f"{FIELDLESS[encoder]} (use --codec h264 to keep it interlaced)" if encoder in FIELDLESS else
           f"h264 codes fields only where the height is a multiple of {lines}, not {h}" if encoder == "libx264" and h % lines
           else "")
    if why:
        notes.append(f"interlaced video ({'top' if order == 'tff' else 'bottom'} field first) written as progressive "
                     f"frames: {why}")
        return
    if encoder == "libx264":
        options["x264-params"] = f"{order}=1"
    else:  # (mpeg4)
        codec_context.flags |= av.codec.context.Flags.interlaced_dct | av.codec.context.Flags.interlaced_me
    try:
        codec_context.field_order = WRITTEN[order]
    except (AttributeError, TypeError, ValueError):
        pass


def hevc_tag(encoder: str, out_format: str, ostream) -> None:
    """Tag an HEVC stream of an MP4 or MOV file ``hvc1``, the sample entry Apple's players take."""
    if encoder == "libx265" and out_format in ("mp4", "mov"):
        ostream.codec_tag = "hvc1"


#: Keys FFmpeg reads from the container's file type box, not its metadata: not written back as metadata.
FILE_TYPE_KEYS = frozenset({"major_brand", "minor_version", "compatible_brands"})


def container_metadata(metadata: dict[str, str], out_format: str, out) -> None:
    """Give the output container ``out`` (PyAV, header not yet written) the source's ``metadata`` but its
    encoder; in MP4 and MOV, keys in reverse-DNS form (a phone's: ``com.apple.quicktime.…``) are written in the
    ``keys`` atom, as phones write them, with every other key."""
    tags = {k: v for k, v in metadata.items() if k.lower() != "encoder"}
    if out_format in ("mp4", "mov") and any("." in k for k in tags):
        tags = {k: v for k, v in tags.items() if k.lower() not in FILE_TYPE_KEYS}
        flags = out.container_options.get("movflags")
        out.container_options["movflags"] = f"{flags}+use_metadata_tags" if flags else "use_metadata_tags"
    out.metadata.update(tags)
