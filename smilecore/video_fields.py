"""What players and photo libraries read beside the pixels: interlaced fields, the HEVC sample entry Apple's
players take, and the metadata keys phones write.

* **Interlaced video** (camcorders' 1080i AVCHD ``.mts``, DV, broadcast ``.ts``, DVD) is edited as whole frames,
  both fields woven together, and must be coded as interlaced again, in the same field order: written as
  progressive, players no longer deinterlace it and every moving edge shows its comb teeth.
  :func:`field_order` reads the source's order, :func:`code_fields` asks the encoder for it (x264's ``tff`` /
  ``bff``, x265's ``interlace``, MPEG-4's interlaced DCT and motion) and tags the stream (MOV's ``fiel``,
  Matroska's ``FieldOrder``). VP9 and VP8 have no interlaced coding: a note says the result is progressive.
* **HEVC in MP4 and MOV** is tagged ``hvc1`` (parameter sets in the sample entry) rather than FFmpeg's default
  ``hev1``, which QuickTime, iPhones and iPads refuse to play (:func:`hevc_tag`).
* **Phones' metadata keys** (an iPhone's ``com.apple.quicktime.location.ISO6709``, ``…creationdate``, ``…make``,
  ``…model``, ``…software``; Android's ``com.android.version``, ``com.android.capture.fps``) live in MOV/MP4's
  ``keys`` atom, which FFmpeg writes only when asked (``movflags=use_metadata_tags``): without it the result lost
  where and when the clip was taken, and on what. :func:`container_metadata` asks for it where the source has
  such keys.
"""
from __future__ import annotations

#: FFmpeg's ``AVFieldOrder`` values whose top field is shown first (``TT``, ``BT``) and bottom first (``BB``,
#: ``TB``); 0 is unknown and 1 progressive.
TOP_FIRST, BOTTOM_FIRST = (2, 5), (3, 4)
#: The ``AVFieldOrder`` written for each order: coded and shown in it (``TT``, ``BB``).
WRITTEN = {"tff": 2, "bff": 3}
#: Encoders with no interlaced coding, by the codec's name.
NO_FIELDS = {"libvpx-vp9": "vp9", "libvpx": "vp8"}


def field_order(stream) -> str | None:
    """``"tff"`` (top field first) or ``"bff"`` for an interlaced video ``stream`` (PyAV), as its codec
    parameters say; ``None`` for progressive video or an order not given."""
    order = getattr(stream.codec_context, "field_order", 0) if stream.codec_context is not None else 0
    return "tff" if order in TOP_FIRST else "bff" if order in BOTTOM_FIRST else None


def code_fields(av, vstream, encoder: str, codec_context, options: dict[str, str], notes: list[str]) -> None:
    """Code the output as interlaced, in ``vstream``'s field order, where the source is interlaced:
    ``encoder``'s options go into ``options`` (or its flags into ``codec_context``) and the order onto
    ``codec_context``; an encoder with no interlaced coding is said in ``notes``."""
    order = field_order(vstream)
    if order is None:
        return
    if encoder == "libx264":
        options["x264-params"] = f"{order}=1"
    elif encoder == "libx265":
        options["x265-params"] = f"{options.get('x265-params', 'log-level=error')}:interlace={order}"
    elif encoder == "mpeg4":
        codec_context.flags |= av.codec.context.Flags.interlaced_dct | av.codec.context.Flags.interlaced_me
    else:
        notes.append(f"interlaced video ({'top' if order == 'tff' else 'bottom'} field first) written as progressive "
                     f"frames: {NO_FIELDS.get(encoder, encoder)} has no interlaced coding (use h264 or hevc to keep it)")
        return
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
