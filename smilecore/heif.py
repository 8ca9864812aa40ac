"""HEIF (HEIC) photos, the format phones save in, read and written through ``pillow-heif``.

``pillow-heif`` is an optional extra (``pip install ".[heif]"``): its wheels carry
libheif with an HEVC decoder and encoder, whose licences (LGPL, and GPL for the x265 encoder)
are the user's choice to install, not a dependency of the engine.  AVIF, the other format of
the HEIF family, needs nothing extra: Pillow reads and writes it itself.

* :func:`kind_of_file`: ``"heif"``, ``"avif"`` or ``None`` from a file's ``ftyp`` box.
* :func:`require`: makes PIL open and save HEIF (once per process), or raises
  :class:`~smilecore.errors.InputError` / :class:`~smilecore.errors.UsageError` saying how to
  install it.
* :data:`EXTENSIONS`: the file names of HEIF photos.
"""
from __future__ import annotations

import threading
from pathlib import Path

from .errors import InputError, UsageError

#: File extensions of HEIF photos (HEVC-coded; AVIF has its own ``.avif``).
EXTENSIONS = frozenset({".heic", ".heif", ".hif"})

#: What to run so that HEIF photos can be read and written.
INSTALL = 'pip install pillow-heif (from a Smile checkout: pip install ".[heif]")'

#: ``ftyp`` brands of HEVC-coded HEIF files (a still image, a sequence, their variants).
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"})
#: ``ftyp`` brands of AVIF files.
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
#: The HEIF family's generic brands, which say nothing of the coding (the compatible brands do).
_GENERIC_BRANDS = frozenset({b"mif1", b"msf1", b"miaf", b"MiHE", b"MiHB", b"MiHA"})

_lock = threading.Lock()
_registered = False


def kind_of_file(path: str | Path) -> str | None:
    """``"heif"`` for an HEVC-coded HEIF file (``.heic``), ``"avif"`` for an AVIF one, ``None`` for
    anything else, from the brands of the file's ``ftyp`` box (the extension is not consulted)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return None
    return kind_of_bytes(head)


def kind_of_bytes(head: bytes) -> str | None:
    """:func:`kind_of_file` for the first bytes of a file (at least its ``ftyp`` box)."""
    if len(head) < 16 or head[4:8] != b"ftyp":
        return None
    size = int.from_bytes(head[:4], "big")
    end = min(len(head), size) if size >= 16 else 16
    major = head[8:12]
    compatible = [head[i:i + 4] for i in range(16, end - 3, 4)]
    for brand in [major, *compatible]:
        if brand in _AVIF_BRANDS:
            return "avif"
        if brand in _HEIF_BRANDS:
            return "heif"
    if major in _GENERIC_BRANDS:  # a HEIF container with no coding brand: libheif may still read it
        return "heif"
    return None


def available() -> bool:
    """Is ``pillow-heif`` installed (so HEIF can be registered with PIL)?"""
    try:
        import pillow_heif  # noqa: F401
    except ImportError:
        return False
    return True


def _register() -> bool:
    global _registered
    with _lock:
        if not _registered:
            try:
                import pillow_heif
            except ImportError:
                return False
            # thumbnails and depth maps are the source's; the result keeps neither (they would show
            # the face before the smile), and not loading them saves memory
            pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
            _registered = True
    return True


#: x265's speed preset for HEIF results: at 12 MP "ultrafast" takes a few seconds on two cores
#: where x265's default takes tens, for a file about a tenth larger at the same quality.
X265_PRESET = "ultrafast"


def save_params(quality: int) -> dict:
    """PIL save parameters for a HEIF result of ``quality`` (1..100), with x265's fast preset when
    x265 is the encoder (another encoder would refuse the parameter)."""
    import pillow_heif

    params: dict = {"quality": int(quality)}
    if "x265" in (pillow_heif.libheif_info().get("encoders") or {}):
        params["enc_params"] = {"preset": X265_PRESET}
    return params


def require(name: str, writing: bool = False) -> None:
    """Make PIL read and write HEIF; if ``pillow-heif`` is missing raise a one-line error naming
    ``name`` (an :class:`InputError` for a photo to read, a :class:`UsageError` for an output)."""
    if _register():
        return
    if writing:
        raise UsageError(f"{name}: writing HEIF (.heic) photos needs pillow-heif: {INSTALL}")
    raise InputError(f"{name}: a HEIF (HEIC) photo; reading it needs pillow-heif: {INSTALL}")
