"""Landmarks of MediaPipe's face mesh topology (468 points) that the engine reads, named once for
:mod:`smilecore.facemesh` and :mod:`smilecore.mouth_hidden`."""

#: Inner-lip midpoints (upper, lower) and the mouth corners (image left, image right).
LIP_MIDDLE = (13, 14)
MOUTH_CORNERS = (61, 291)
#: The eye corners (outer, inner) of each eye: the eye centres give the face's scale.
EYE_CORNERS = ((33, 133), (362, 263))
