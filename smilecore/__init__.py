"""Smile's headless engine: detect faces, align them, run the smile network, warp back.

>>> from PIL import Image
>>> import smilecore
>>> result = smilecore.smile(Image.open("photo.jpg"), strength=2)   # doctest: +SKIP
>>> result.image.save("photo.smile.jpg")                           # doctest: +SKIP
"""
from .offline import no_telemetry

no_telemetry()  # (before anything below imports onnxruntime)

from .errors import ImageTooLargeError, InputError, ModelError, NoFaceError, SmileError, UsageError, WriteError
from .detect import detect_faces as _detect_array
from .face import Face
from .model import SmileModel
from .pipeline import Result, load_model, smile

__version__ = "0.1.0"


def detect_faces(image, min_face: int | None = None, small_faces: bool = True, upside_down: bool = True,
                 max_pixels: int | None = None) -> list[Face]:
    """Faces in a PIL image or (H,W[,C]) array, largest first (EXIF orientation applied for PIL).

    ``small_faces=False`` (as for video frames) skips the second search of a large photo for faces
    too small for the detection copy (it costs up to about a quarter of a second, on photos with no
    face or small ones), and the first search's levels for the people behind a close-up (about 20 ms);
    ``upside_down=False`` skips the checks of which way up each face is and the searches of the photo
    turned (a photo with no face, or whose faces mostly stand turned: each about as much as the first
    search).  ``max_pixels``: as for :func:`smile` (default ``SMILE_MAX_PIXELS``, else 200 MP); a PIL
    image above it is refused from its header, before its pixels are decoded
    (:class:`ImageTooLargeError`)."""
    from .arguments import check_flag, check_min_face, pixel_limit, too_large
    from .pipeline import input_size
    from .pixels import from_any

    limit = pixel_limit(max_pixels)
    min_face = check_min_face(min_face)
    small_faces = check_flag(small_faces, "small_faces")
    upside_down = check_flag(upside_down, "upside_down")
    size = input_size(image)
    if size is not None and size[0] * size[1] > limit:
        raise too_large(size[0], size[1], limit)
    return _detect_array(from_any(image).array, min_face=min_face, small_faces=small_faces, upside_down=upside_down)


__all__ = [
    "smile", "Result", "Face", "SmileModel", "load_model", "detect_faces",
    "SmileError", "NoFaceError", "InputError", "ImageTooLargeError", "ModelError", "UsageError", "WriteError",
    "__version__",
]
