"""What a strength means for one face: the smile it ends with, not an amount added on top.

λ = 1 is a typical real smile and λ = 2 a broad one (docs/realism.md). The network adds a smile
to whatever the face shows, so a face that already smiles would go past a broad smile at λ = 2
(a stretched grin that a realism test tells from a real smile every time). A positive strength
therefore asks for a smile of that size: each face gets only what it lacks, λ minus its own
strength (:func:`own_strength`, read by :func:`smilecore.facemesh.smile_level`), never less
than 0; a face that already smiles that much is left as it is. A negative strength ("less
smile") takes away from whatever the face shows, as before. Most neutral faces are not touched
by the rule: 89 % of the validation split's read below :data:`NEUTRAL_SPREAD`; of the rest, half
get less than 0.2 taken off what was asked, and the one in a hundred whose mouth already reads
like a smile up to about 0.6 (on 326 faces, at most 1.1).

Beyond a broad smile the size asked for saturates (:func:`saturated`): strength 3 asks for a
smile of about 2.37 and 4 for 2.40, never more than :data:`BROAD` + :data:`SATURATION`. Real
smiles stop there, and the network does not: given 3 or 4 it widens the mouth past the 90th
percentile of real smiles in four faces of ten and thins the upper lip below theirs in three
(training.realism_geometry, validation split, model 1.9.0).
"""
from __future__ import annotations

import numpy as np

#: How the reason of a face left as it is because it already smiles begins (smilecore.face.Face.reason).
ALREADY_SMILING = "already smiling"
#: How that reason ends when a higher strength would widen the face's smile (it is not yet as
#: broad as :func:`saturated` lets any smile be).
WIDER = "a higher strength widens the smile"

#: Neutral faces' own smile level spreads to about this (10th–90th percentile −0.41 … 0.42 on
#: the validation split): below it a face counts as not smiling, and from it to a typical real
#: smile (level 1) its own strength rises from 0 to 1.
NEUTRAL_SPREAD = 0.4
#: A broad real smile (about the 90th percentile of real smiles: docs/realism.md) is strength 2;
#: past it a strength asks for less and less more (:func:`saturated`), at most this much in all.
BROAD = 2.0
SATURATION = 0.4


#: Faces turned away from the camera (smilecore.face.Face.facing: 1 facing it, 0 with the nose tip on
#: one ear's line, below 0 a profile). The network learnt from faces seen from the front; in profile it
#: draws lips on the nose or teeth on a cheek (looked at on the validation photos: most faces below
#: about −0.3 at strength 2; three-quarter views, 0 and up, look as the frontal ones do). A face gets the
#: whole strength from FACING_FULL up, less and less below it, and none at FACING_NONE (it is left as it
#: is, with :data:`TURNED_AWAY`).
FACING_FULL = 0.0
FACING_NONE = -0.5
TURNED_AWAY = "turned away from the camera: Smile edits faces seen from the front"
#: The reason of a face whose mouth something covers (a hand, a face mask, a microphone: read by
#: smilecore.mouth_hidden). The network would draw lips and teeth on it, so the face is left as it is.
MOUTH_HIDDEN = "mouth hidden (a hand, a mask or an object in front of it): Smile edits faces whose mouth shows"


def facing_share(facing: float | np.ndarray) -> np.ndarray:
    """The share of the strength a face turned ``facing`` from the camera gets (0…1; see :data:`FACING_FULL`)."""
    return np.clip((np.asarray(facing, np.float64) - FACING_NONE) / (FACING_FULL - FACING_NONE), 0.0, 1.0)


def own_strength(level: float | np.ndarray) -> np.ndarray:
    """The strength a face already shows, from its smile level (0 below :data:`NEUTRAL_SPREAD`,
    1 at a typical real smile, about 2 at a broad one)."""
    return np.maximum((np.asarray(level, np.float64) - NEUTRAL_SPREAD) / (1.0 - NEUTRAL_SPREAD), 0.0)


def saturated(strength: float | np.ndarray) -> np.ndarray:
    """The size of smile a ``strength`` asks for: ``strength`` itself up to :data:`BROAD`, then
    ``BROAD + SATURATION · (1 − exp(−(strength − BROAD) / SATURATION))``: the same slope at
    :data:`BROAD`, approaching ``BROAD + SATURATION`` and never reaching it."""
    lam = np.asarray(strength, np.float64)
    over = np.maximum(lam - BROAD, 0.0)
    return np.where(lam > BROAD, BROAD + SATURATION * -np.expm1(-over / SATURATION), lam)


def face_strengths(strength: float | np.ndarray, level: np.ndarray) -> np.ndarray:
    """The strength each face is given (float32, the shape of ``level``) when ``strength`` is asked
    for: above 0, what the face lacks of the :func:`saturated` smile it asks for; 0 and below,
    ``strength`` itself."""
    lam = saturated(np.broadcast_to(np.asarray(strength, np.float64), np.shape(level)))
    lacking = np.maximum(lam - own_strength(level), 0.0)
    return np.where(lam > 0, lacking, lam).astype(np.float32)


def already_smiling(own: float) -> str:
    """The reason given for a face left as it is: it already smiles as much as asked (``own``: its
    own strength); whether a higher strength would widen it."""
    if own < BROAD + SATURATION:
        return f"{ALREADY_SMILING} (about strength {own:.1f}); {WIDER}"
    return f"{ALREADY_SMILING} (about strength {own:.1f}): as broad as Smile makes any smile"
