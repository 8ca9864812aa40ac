"""A realism judge that sees only the face's shape: the face mesh's landmarks.

The realism test (:mod:`training.realism`) reads the grey lower face's gradients and texture; a
smile can also give itself away by where things are: corners lifted higher than real smiles lift
them, a chin that rises, lips thinned. This judge runs the same person-disjoint two-sample test
on the 468 landmarks of MediaPipe's face mesh (:mod:`smilecore.facemesh`, the engine's own),
placed on each aligned crop, centred on the midpoint of the two eye centres and divided by the
distance between them (936 values). Unedited neutral faces against real smiles score near 1
(a smile is a shape); an edit with the geometry of real smiles scores lower.

The mesh reads light as well as shape (a shade that deepens a fold can move the landmarks on
it), so this judge is mostly, not only, about geometry.
"""
from __future__ import annotations

import numpy as np

#: Faces given to the face mesh at once.
BATCH = 32


def normalised(landmarks: np.ndarray) -> np.ndarray:
    """(N, 468, 2) face-mesh landmarks → (N, 936) features: less the midpoint of the eye centres,
    divided by the distance between them (the same for any shift or scale of a face)."""
    from smilecore.facemesh import EYE_CORNERS

    pts = np.asarray(landmarks, np.float64)
    eyes = [pts[:, list(corners)].mean(1) for corners in EYE_CORNERS]
    centre = (eyes[0] + eyes[1]) / 2.0
    dist = np.linalg.norm(eyes[1] - eyes[0], axis=1)
    out = (pts - centre[:, None]) / np.maximum(dist, 1e-6)[:, None, None]
    return out.reshape(len(pts), -1)


def shape_features(crops: np.ndarray) -> np.ndarray:
    """(N, S, S, 3) uint8 aligned crops → (N, 936) :func:`normalised` face-mesh landmarks."""
    from smilecore import facemesh

    mesh = facemesh.network()
    if len(crops) == 0:
        return np.zeros((0, 936))
    return normalised(np.concatenate([mesh.landmarks(crops[a : a + BATCH]) for a in range(0, len(crops), BATCH)]))
