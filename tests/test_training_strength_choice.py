"""The strength-choice study's arithmetic: the judge, its cross-fitting, the choice and its calibration
(skipped without torch, as the other training tests)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("cv2")

from training.strength_choice import Candidates, calibrate, choose, chosen, cross_fitted_scores, fit_judge  # noqa: E402


def test_choose_takes_the_lowest_score_and_the_prior_weighs_against_it():
    scores = np.array([[0.0, -1.0, -3.0], [2.0, 1.0, 0.5], [-1.0, 0.0, 0.0]])
    prior = np.array([0.1, 0.2, 0.4])
    assert choose(scores, prior, 0.0).tolist() == [2, 2, 0]
    # weight 5: candidate 2 costs 1 more than candidate 1 and 1.5 more than candidate 0
    assert choose(scores, prior, 5.0).tolist() == [2, 1, 0]
    assert choose(scores, prior, 1e6).tolist() == [0, 0, 0]


def test_calibrate_finds_the_smallest_weight_that_keeps_identity_under_the_target():
    rng = np.random.default_rng(0)
    n = 200
    scores = np.c_[np.zeros(n), rng.normal(-1.0, 1.0, n)]  # candidate 1 (a broader smile) usually looks more real
    identity = np.c_[np.full(n, 0.2), np.full(n, 0.3)]  # and always costs more identity
    prior = identity.mean(0)
    weight = calibrate(scores, identity, prior, target=0.25)
    rows = np.arange(n)
    assert identity[rows, choose(scores, prior, weight)].mean() <= 0.25
    assert identity[rows, choose(scores, prior, weight - 0.125)].mean() > 0.25  # one grid step less is over
    assert calibrate(scores, identity, prior, target=0.3) == 0.0  # any choice is within the target
    assert calibrate(scores, identity, prior, target=0.1) == 100.0  # none is: the largest weight


def test_the_judge_and_its_cross_fitting_tell_the_shifted_candidate():
    rng = np.random.default_rng(1)
    n, d = 120, 6
    reals = rng.normal(0.0, 1.0, (300, d))
    like_real = rng.normal(0.0, 1.0, (n, d))
    shifted = rng.normal(0.0, 1.0, (n, d)) + np.r_[2.0, np.zeros(d - 1)]  # told by its first feature
    cands = Candidates(np.stack([like_real, shifted], 1), np.zeros((n, 2)))
    judge = fit_judge(shifted, reals)
    assert (judge(shifted) > np.median(judge(like_real))).mean() > 0.8
    person = np.repeat(np.arange(n // 2), 2)
    scores = cross_fitted_scores(cands, reals, person)
    assert scores.shape == (n, 2)
    assert (scores[:, 1] > scores[:, 0]).mean() > 0.75
    assert choose(scores, np.zeros(2), 0.0).tolist().count(0) > 0.75 * n
    with pytest.raises(ValueError, match="too few people"):
        cross_fitted_scores(cands, reals, np.zeros(n, int))


def test_chosen_reads_each_face_at_its_candidate():
    values = np.arange(12).reshape(4, 3)
    assert chosen(values, np.array([0, 2, 1, 0])).tolist() == [0, 5, 7, 9]
    features = np.arange(24).reshape(4, 3, 2)
    assert chosen(features, np.array([2, 0, 0, 1])).tolist() == [[4, 5], [6, 7], [12, 13], [20, 21]]


def test_candidates_come_from_each_editor_at_its_own_strength():
    """Each candidate of ``_candidates`` is one (editor, strength) pair: a closed-lip candidate is another
    editor at the strength asked, beside the engine's editor at each multiple."""
    from training.realism import features
    from training.strength_choice import _candidates

    rng = np.random.default_rng(2)
    crops = rng.integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)

    class Ident:  # a stand-in for dlib: the descriptor is the mean colour
        def shape(self, face):
            return None

        def descriptor(self, face, shape):
            return face.reshape(-1, 3).mean(0)

    def brighter(faces, lam):
        return np.clip(faces.astype(int) + int(10 * lam), 0, 255).astype(np.uint8)

    def same(faces, lam):
        return faces

    c = _candidates([(same, 1.0), (brighter, 1.0), (brighter, 2.0)], 64, crops, np.array([4, 0, 2]), Ident(), chunk=2)
    assert c.features.shape[:2] == (3, 3) and c.identity.shape == (3, 3)
    assert np.allclose(c.features[:, 0], features(crops[[4, 0, 2]], False))
    assert np.allclose(c.identity[:, 0], 0.0)
    assert np.all(c.identity[:, 2] > c.identity[:, 1]) and np.all(c.identity[:, 1] > 5.0)
