"""Smile's headless engine: detect faces, align them, run the smile network, warp back.

>>> from PIL import Image
>>> import smilecore
>>> result = smilecore.smile(Image.open("photo.jpg"), strength=2)   # doctest: +SKIP
>>> result.image.save("photo.smile.jpg")                           # doctest: +SKIP
"""
from .errors import ImageTooLargeError, InputError, ModelError, NoFaceError, SmileError, UsageError, WriteError
from .detect import detect_faces as _detect_array
from .face import Face
from .model import SmileModel
from .pipeline import Result, load_model, smile

__version__ = "0.1.0"


def detect_faces(image, min_face: int | None = None) -> list[Face]:
    """Faces in a PIL image or (H,W[,C]) array, largest first (EXIF orientation applied for PIL)."""
    from .pixels import from_any

    return _detect_array(from_any(image).array, min_face=min_face)


__all__ = [
    "smile", "Result", "Face", "SmileModel", "load_model", "detect_faces",
    "SmileError", "NoFaceError", "InputError", "ImageTooLargeError", "ModelError", "UsageError", "WriteError",
    "__version__",
]
