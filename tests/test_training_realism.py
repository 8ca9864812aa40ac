"""The realism two-sample test: AUC, logistic regression, person-disjoint folds, source matching (skipped without torch)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("cv2")
pytest.importorskip("skimage")

from training import realism  # noqa: E402
from training.realism import (  # noqa: E402
    assign_people, features, fit_logistic, match_strata, person_folds, roc_auc, stratum_keys, two_sample_auc,
)


def test_roc_auc_hand_checked():
    # positives 0.8, 0.4, 0.4; negatives 0.4, 0.1: pairs (pos > neg) = 2 + (0.5 + 1) + (0.5 + 1) = 5 of 6
    assert roc_auc(np.array([0.8, 0.4, 0.4, 0.4, 0.1]), np.array([1, 1, 1, 0, 0])) == pytest.approx(5 / 6)
    assert roc_auc(np.array([3.0, 2.0, 1.0]), np.array([1, 0, 0])) == 1.0
    assert roc_auc(np.array([3.0, 2.0, 1.0]), np.array([0, 1, 1])) == 0.0
    assert roc_auc(np.ones(6), np.array([1, 0, 1, 0, 1, 0])) == 0.5  # all tied
    with pytest.raises(ValueError):
        roc_auc(np.array([1.0, 2.0]), np.array([1, 1]))


def test_roc_auc_matches_pair_counting():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 5, 40).astype(float)  # many ties
    y = rng.random(40) < 0.4
    pos, neg = s[y], s[~y]
    brute = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (len(pos) * len(neg))
    assert roc_auc(s, y) == pytest.approx(brute)


def test_logistic_regression_separates_and_regularises():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 5))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    m = fit_logistic(x, y, l2=1e-3)
    assert ((m.decision(x) > 0) == y).mean() > 0.97
    assert m.w[0] > m.w[1] > abs(m.w[2])
    strong = fit_logistic(x, y, l2=100.0)
    assert np.abs(strong.w).max() < 0.1 * np.abs(m.w).max()
    p = m.probability(x)
    assert ((p >= 0) & (p <= 1)).all()
    # a constant feature does not break the standardisation
    m2 = fit_logistic(np.hstack([x, np.ones((200, 1))]), y, l2=1e-2)
    assert np.isfinite(m2.w).all()


def _people(n: int, per: int, prefix: str) -> np.ndarray:
    return np.array([f"{prefix}{i // per}" for i in range(n)])


def test_person_folds_never_share_a_person_and_keep_classes_and_strata():
    rng = np.random.default_rng(2)
    person = np.concatenate([_people(60, 3, "a"), _people(60, 2, "b")])
    y = np.r_[np.ones(60, int), np.zeros(60, int)]
    strata = np.where(np.arange(120) % 6 < 2, "grey", "colour")
    strata = np.array([strata[np.flatnonzero(person == p)[0]] for p in person])  # one stratum per person
    fold = person_folds(person, y, strata, 5, rng)
    assert set(fold.tolist()) == set(range(5))
    for p in np.unique(person):
        assert len(np.unique(fold[person == p])) == 1
    for f in range(5):
        for c in (0, 1):
            for s in ("grey", "colour"):
                n = ((fold == f) & (y == c) & (strata == s)).sum()
                total = ((y == c) & (strata == s)).sum()
                assert abs(n - total / 5) <= 3  # at most one person's worth off the even share


def test_two_sample_auc_identical_distributions_near_half():
    rng = np.random.default_rng(3)
    x1, x0 = rng.normal(size=(120, 30)), rng.normal(size=(120, 30))
    r = two_sample_auc(x1, x0, _people(120, 2, "a"), _people(120, 2, "b"), ["s"] * 120, ["s"] * 120, folds=4, repeats=2)
    assert abs(r["auc"] - 0.5) < 0.1
    assert len(r["fold_aucs"]) == 8 and r["n1"] == r["n0"] == 120


def test_two_sample_auc_different_distributions_near_one():
    rng = np.random.default_rng(4)
    x1, x0 = rng.normal(size=(80, 30)), rng.normal(size=(80, 30))
    x1[:, :3] += 3.0  # three features shifted by 3 sd: Bayes AUC > 0.99
    r = two_sample_auc(x1, x0, _people(80, 1, "a"), _people(80, 1, "b"), ["s"] * 80, ["s"] * 80, folds=4, repeats=1)
    assert r["auc"] > 0.95


def test_two_sample_auc_refuses_shared_people():
    x = np.zeros((4, 2))
    with pytest.raises(ValueError, match="share people"):
        two_sample_auc(x, x, ["a", "b", "c", "d"], ["d", "e", "f", "g"], ["s"] * 4, ["s"] * 4)


def test_match_strata_keeps_proportions_on_both_sides():
    rng = np.random.default_rng(5)
    k1 = np.array(["utk"] * 300 + ["expr"] * 50 + ["only1"] * 5)
    k0 = np.array(["utk"] * 80 + ["expr"] * 120 + ["only0"] * 7)
    i1, i0 = match_strata(k1, k0, rng)
    assert sorted(k1[i1].tolist()) == sorted(k0[i0].tolist())
    assert (k1[i1] == "utk").sum() == 80 and (k1[i1] == "expr").sum() == 50
    assert len(np.unique(i1)) == len(i1) and len(np.unique(i0)) == len(i0)
    j1, j0 = match_strata(k1, k0, rng, max_per_class=65)  # 80:50 scaled to 40:25
    assert len(j1) == len(j0) == 65
    assert (k1[j1] == "utk").sum() == (k0[j0] == "utk").sum() == 40


def test_assign_people_puts_each_person_on_one_side():
    person = np.array(["p1", "p1", "p2", "p3", "p3", "p4", "p5"])
    r1, r0 = assign_people(np.array([0, 2, 3]), np.array([1, 4, 5, 6]), person, np.random.default_rng(6))
    assert not set(person[r1]) & set(person[r0])
    assert 2 in r1 and 5 in r0 and 6 in r0  # people on one side only stay
    assert {"p1", "p3"} <= set(person[r1]) | set(person[r0])  # shared people are kept, on one side


def test_stratum_keys_separate_source_colour_size_and_utkface_demographics():
    index = {"source": np.array(["utkface", "utkface", "expressions", "expressions"]),
             "gray": np.array([False, False, True, True]), "face_px": np.array([150, 150, 150, 40], np.int16),
             "file": np.array(["utkface/images/25_1_0_2017.jpg", "utkface/images/50_0_2_2017.jpg",
                               "expressions/images/A_1.jpg", "expressions/images/B_1.jpg"]),
             "age": np.array([25, 50, -1, -1], np.int16)}
    assert stratum_keys(index, np.arange(4)).tolist() == [
        "utkface/colour/large/female/<30", "utkface/colour/large/male/50+", "expressions/grey/large", "expressions/grey/small"]
    assert stratum_keys(index, np.arange(2), demographics=False).tolist() == ["utkface/colour/large"] * 2
    assert [realism.age_band(a) for a in (13, 29, 30, 49, 50, -1)] == ["<30", "<30", "30-49", "30-49", "50+", "?"]


def test_realism_sample_other_people_same_strata():
    rng = np.random.default_rng(11)
    rows = []
    for i in range(40):  # expressions: every person has neutral and happy photos, some grey
        for lab in (0, 0, 1, 1, 1):
            rows.append(("expressions", f"expr:{i}", lab, i % 4 == 0, -1, f"expressions/images/{i}.jpg"))
    for i in range(120):  # UTKFace, labelled here (no classifier labels): 2 in 3 smiles are women
        lab = int(i % 2)
        female = rng.random() < (0.67 if lab else 0.35)
        rows.append(("utkface", f"utk:{i}", lab, False, int(rng.integers(18, 80)), f"utkface/images/30_{int(female)}_0_x.jpg"))
    index = {"source": np.array([r[0] for r in rows]), "person": np.array([r[1] for r in rows]),
             "label": np.array([r[2] for r in rows], np.int8), "gray": np.array([r[3] for r in rows]),
             "age": np.array([r[4] for r in rows], np.int16), "file": np.array([r[5] for r in rows]),
             "face_px": np.full(len(rows), 150, np.int16), "split": np.array(["val"] * len(rows))}
    s = realism.realism_sample(index, None, "val", seed=1, max_per_class=None, frontal_tolerance=None)
    assert not set(index["person"][s.edit_rows]) & set(index["person"][s.real_rows])
    assert (index["label"][s.edit_rows] == 0).all() and (index["label"][s.real_rows] == 1).all()
    assert sorted(s.edit_keys.tolist()) == sorted(s.real_keys.tolist())
    assert sum(s.strata.values()) == len(s.edit_rows) == len(s.real_rows) > 40
    for rows_ in (s.edit_rows, s.real_rows):  # at most 3 photos of anyone
        assert np.unique(index["person"][rows_], return_counts=True)[1].max() <= 3
    capped = realism.realism_sample(index, None, "val", seed=1, max_per_class=30, frontal_tolerance=None)
    assert len(capped.edit_rows) == len(capped.real_rows) == 30
    assert sorted(capped.edit_keys.tolist()) == sorted(capped.real_keys.tolist())


def _faces(n: int, rng: np.random.Generator, mouth: int) -> np.ndarray:
    """Noisy 128² grey 'faces' with a dark horizontal mouth bar of thickness ``mouth`` (0: none)."""
    img = np.clip(rng.normal(150, 20, size=(n, 128, 128, 1)), 0, 255).repeat(3, -1).astype(np.uint8)
    if mouth:
        img[:, 95 : 95 + mouth, 45:83] = 40
    return img


def test_features_see_the_mouth_and_ignore_the_forehead():
    rng = np.random.default_rng(7)
    closed, opened = _faces(30, rng, 0), _faces(30, rng, 8)
    f = features(np.concatenate([closed, opened]))
    assert f.shape == (60, 1770) and np.isfinite(f).all()
    r = two_sample_auc(f[30:], f[:30], _people(30, 1, "a"), _people(30, 1, "b"), ["s"] * 30, ["s"] * 30, folds=3, repeats=1)
    assert r["auc"] > 0.95
    forehead = opened.copy()
    forehead[:, 10:30] = 0  # outside the lower-face window: no feature changes
    assert np.array_equal(features(forehead), features(opened))
    assert features(closed[:2], colour=True).shape == (2, 1830)


def test_mirror_pooled_features_cannot_tell_which_way_a_mouth_leans():
    rng = np.random.default_rng(11)
    left, right = _faces(30, rng, 0), _faces(30, rng, 0)
    left[:, 95:103, 45:64] = 40  # the bar on one half of the mouth only ...
    right[:, 95:103, 64:83] = 40  # ... and on the other, in other faces
    pa, pb = _people(30, 1, "a"), _people(30, 1, "b")
    plain = two_sample_auc(features(left), features(right), pa, pb, ["s"] * 30, ["s"] * 30, folds=3, repeats=1)
    assert plain["auc"] > 0.95
    pooled = two_sample_auc(realism.mirror_pooled_features(left), realism.mirror_pooled_features(right), pa, pb,
                            ["s"] * 30, ["s"] * 30, folds=3, repeats=1)
    assert abs(pooled["auc"] - 0.5) < 0.25
    # a crop and its mirror image have the same pooled features; a bar on both halves is still seen
    f = realism.mirror_pooled_features(np.concatenate([left[:2], left[:2, :, ::-1]]))
    assert f.shape == (4, 1770) and np.allclose(f[:2], f[2:], atol=1e-5)
    whole = two_sample_auc(realism.mirror_pooled_features(_faces(30, rng, 8)), realism.mirror_pooled_features(_faces(30, rng, 0)),
                           pa, pb, ["s"] * 30, ["s"] * 30, folds=3, repeats=1)
    assert whole["auc"] > 0.95


def test_evaluate_realism_on_a_toy_editor():
    rng = np.random.default_rng(8)
    n = 24
    crops = np.concatenate([_faces(n, rng, 0), _faces(n, rng, 0)])
    index = {"person": np.array([f"n{i}" for i in range(n)] + [f"s{i}" for i in range(n)]),
             "source": np.array(["utkface"] * (2 * n)), "gray": np.zeros(2 * n, bool), "face_px": np.full(2 * n, 150)}
    sample = realism.RealismSample(np.arange(n), np.arange(n, 2 * n), {"utkface/colour/large": n})

    def edit(x: np.ndarray, lam: float) -> np.ndarray:
        y = x.copy()
        y[:, 95 : 95 + int(4 * lam), 45:83] = 40  # a mouth bar that no real face has
        return y

    result, sheet = realism.evaluate_realism(edit, 128, crops, index, sample, lams=(1.0, 2.0), folds=3, repeats=1, colour=False)
    assert abs(result["ceiling"]["auc"] - 0.5) < 0.2  # the same noise on both sides
    assert result["per_lambda"]["2"]["auc"] > 0.95
    assert abs(result["floor"]["auc"] - 0.5) < 0.3
    assert sheet.dtype == np.uint8 and sheet.shape[1] == 4 * realism.PATCH[1]
    from training.realism_table import markdown

    table = markdown(result)
    assert "unedited (ceiling)" in table and "λ = +2" in table and "utkface only" in table
    assert set(result["per_lambda"]["1"]["by_source"]) == {"utkface"}
    # the shape judge ran on every condition and the floor, and has its column
    assert all(0.0 <= m["auc_shape"] <= 1.0 for m in [result["ceiling"], result["floor"], *result["per_lambda"].values()])
    assert "shape judge (face mesh)" in table
    # the mirror-pooled judge too (the bar is symmetric: it is seen either way round)
    assert result["per_lambda"]["2"]["auc_mirror"] > 0.95 and abs(result["ceiling"]["auc_mirror"] - 0.5) < 0.3
    assert 0.0 <= result["floor"]["auc_mirror"] <= 1.0 and "mirror-pooled" in table
    # the context row: the same noise on both sides outside the faces, so nothing to tell
    assert abs(result["context"]["auc"] - 0.5) < 0.3 and 0.0 <= result["context"]["window_share"] <= 1.0
    assert "context: unedited, every face painted grey" in table
    # the judges of other kinds: the dark bar is a shape, a texture and a spectrum at once
    for k in ("_gabor", "_pixels", "_spectrum"):
        assert result["per_lambda"]["2"]["auc" + k] > 0.9, k
        assert abs(result["ceiling"]["auc" + k] - 0.5) < 0.3 and 0.0 <= result["floor"]["auc" + k] <= 1.0, k
    assert "Gabor judge" in table and "pixel judge" in table and "spectrum judge" in table
    assert len({line.count("|") for line in table.splitlines()[2:]}) == 1  # every row has every column


def test_cap_per_person_limits_everyone():
    person = np.array(["a"] * 10 + ["b"] * 2 + ["c"])
    kept = realism.cap_per_person(np.arange(13), person, 3, np.random.default_rng(9))
    assert (person[kept] == "a").sum() == 3 and (person[kept] == "b").sum() == 2 and (person[kept] == "c").sum() == 1
    assert np.all(np.diff(kept) > 0)


def test_two_sample_auc_by_group_finds_the_group_that_differs():
    rng = np.random.default_rng(10)
    x1, x0 = rng.normal(size=(120, 10)), rng.normal(size=(120, 10))
    g = np.array(["same", "differs"] * 60)
    x1[g == "differs", :3] += 3.0
    r = two_sample_auc(x1, x0, _people(120, 1, "a"), _people(120, 1, "b"), g, g, folds=4, repeats=2, group1=g, group0=g)
    assert r["by_group"]["differs"] > 0.95
    assert abs(r["by_group"]["same"] - 0.5) < 0.2


def test_a_realism_study_writes_its_table_or_says_why_not(tmp_path, monkeypatch, capsys):
    """realism-regions and teacher-realism share training.realism_study: arguments, sample, table file."""
    from training import dataset, prepare, realism_study

    monkeypatch.setenv("SMILE_TRAINING_CACHE", str(tmp_path))
    crops, index = np.zeros((4, 8, 8, 3), np.uint8), {"person": np.arange(4)}
    monkeypatch.setattr(prepare, "load_prepared", lambda cfg: (crops, index))
    monkeypatch.setattr(dataset, "load_labels", lambda cache_dir: None)
    asked = {}

    def sample(index_, labels, split, seed, max_per_class, broad=False):
        asked.update(split=split, faces=max_per_class, broad=broad)
        if split == "test":
            raise ValueError("the test split has no neutral faces")
        return "the sample"

    monkeypatch.setattr(realism, "realism_sample", sample)
    seen = []

    def body(args, study):
        seen.append((study.crops is crops, study.index is index, study.sample))
        return "| a | table |"

    ap = realism_study.study_parser("some-study", "a study", "a model")
    assert realism_study.run_study(ap, ["--faces", "7"], "some_study", body) == 0
    assert asked == {"split": "val", "faces": 7, "broad": False} and seen == [(True, True, "the sample")]
    assert (tmp_path / "eval" / "some_study_val.md").read_text() == "| a | table |\n"
    assert realism_study.run_study(ap, ["--split", "test"], "some_study", body) == 2
    assert len(seen) == 1 and not (tmp_path / "eval" / "some_study_test.md").exists()
    assert "error: the test split has no neutral faces" in capsys.readouterr().err


def test_smilers_sample_edits_real_smiles_of_other_people_than_the_real_side():
    rows = []
    for i in range(60):
        for lab in (0, 1, 1):
            rows.append(("expressions", f"expr:{i}", lab, False, -1, f"expressions/images/{i}.jpg"))
    index = {"source": np.array([r[0] for r in rows]), "person": np.array([r[1] for r in rows]),
             "label": np.array([r[2] for r in rows], np.int8), "gray": np.array([r[3] for r in rows]),
             "age": np.array([r[4] for r in rows], np.int16), "file": np.array([r[5] for r in rows]),
             "face_px": np.full(len(rows), 150, np.int16), "split": np.array(["val"] * len(rows))}
    s = realism.realism_sample(index, None, "val", seed=2, max_per_class=None, frontal_tolerance=None, smilers=True)
    assert (index["label"][s.edit_rows] == 1).all() and (index["label"][s.real_rows] == 1).all()
    assert not set(index["person"][s.edit_rows]) & set(index["person"][s.real_rows])
    assert len(s.edit_rows) == len(s.real_rows) > 30


def test_cnn_judge_sees_a_pattern_and_not_noise():
    from functools import partial

    from training.realism_cnn import fit_cnn, standardise

    rng = np.random.default_rng(5)
    plain, marked = _faces(60, rng, 0), _faces(60, rng, 0)
    marked[:, 90:96, 40:88] = 60  # a dark bar across the lower face of every "edited" face
    windows = lambda f: standardise(realism.lower_face(f) @ realism.LUMA)  # noqa: E731
    fit = partial(fit_cnn, epochs=8)
    people = _people(60, 1, "a"), _people(60, 1, "b")
    seen = two_sample_auc(windows(marked), windows(plain), *people, ["s"] * 60, ["s"] * 60, folds=3, repeats=1, fit=fit)
    assert seen["auc"] > 0.9
    other = _faces(60, rng, 0)
    blind = two_sample_auc(windows(other), windows(plain), *people, ["s"] * 60, ["s"] * 60, folds=3, repeats=1, fit=fit)
    assert blind["auc"] < 0.8


def test_realism_regions_tests_the_strengths_asked_for(monkeypatch):
    from training import realism_regions

    got = []
    monkeypatch.setattr(realism_regions, "run_study", lambda ap, argv, name, body: got.append(ap.parse_args(argv).lams) or 0)
    assert realism_regions.main(["--lams", "1.5", "2"]) == 0 and realism_regions.main([]) == 0
    assert got == [[1.5, 2.0], [1.0, 2.0]]


def test_shape_features_forget_where_and_how_large_a_face_is_but_see_its_mouth():
    from smilecore.facemesh import MOUTH_CORNERS
    from training.realism_shape import normalised

    rng = np.random.default_rng(3)
    pts = rng.uniform(60, 200, (1, 468, 2))
    moved = pts * 1.7 + np.array([12.0, -30.0])  # the same face larger, elsewhere
    assert np.allclose(normalised(pts), normalised(moved))
    wide = pts.copy()
    wide[0, MOUTH_CORNERS[0], 0] -= 5  # a wider mouth: its corner's features change, nothing else
    diff = np.abs(normalised(wide) - normalised(pts)).reshape(468, 2)
    assert diff[MOUTH_CORNERS[0], 0] > 0.01 and np.delete(diff, MOUTH_CORNERS[0], axis=0).max() == 0


def test_shape_judge_tells_a_wider_mouth_on_the_sample(astronaut):
    """On real landmarks: the sample's crop against the same crop with its mouth stretched sideways."""
    import cv2

    import smilecore
    from smilecore.align import align_face, extract_crop
    from training.realism_shape import shape_features

    face = smilecore.detect_faces(astronaut)[0]
    crop = extract_crop(astronaut, align_face(face.landmarks, 256))
    wide = crop.copy()
    band = crop[150:215, 64:192]
    wide[150:215, 48:208] = cv2.resize(band, (160, 65), interpolation=cv2.INTER_CUBIC)  # mouth 25 % wider
    f = shape_features(np.stack([crop, wide]))
    assert f.shape == (2, 936) and np.isfinite(f).all()
    from smilecore.facemesh import MOUTH_CORNERS

    width = [abs(x.reshape(468, 2)[MOUTH_CORNERS[1], 0] - x.reshape(468, 2)[MOUTH_CORNERS[0], 0]) for x in f]
    assert width[1] > width[0] * 1.1


def test_held_out_auc_tells_what_differs_and_not_what_does_not():
    rng = np.random.default_rng(21)

    def draw(n: int, shift: float) -> np.ndarray:
        x = rng.normal(size=(n, 6))
        x[:, 0] += shift
        return x

    same = realism.held_out_auc(draw(200, 0), draw(200, 0), draw(100, 0), draw(100, 0), bootstrap=50)
    apart = realism.held_out_auc(draw(200, 3), draw(200, 0), draw(100, 3), draw(100, 0),
                                 group1=["a"] * 50 + ["b"] * 50, group0=["a"] * 50 + ["b"] * 50, bootstrap=50)
    assert abs(same["auc"] - 0.5) < 0.12 and 0.0 < same["sd"] < 0.1
    assert apart["auc"] > 0.95 and set(apart["by_group"]) == {"a", "b"}
    assert apart["n_train"] == 200 and apart["n_test"] == 100
    with pytest.raises(ValueError, match="both sides"):
        realism.held_out_auc(draw(10, 0), draw(0, 0), draw(5, 0), draw(5, 0))


def _two_splits(n: int) -> dict[str, np.ndarray]:
    """An index of ``n`` neutral (label 0) and ``n`` smiling (1) photos of different people in each of
    the train and val splits."""
    rows = [(split, lab, f"{split}{lab}:{i}") for split in ("train", "val") for lab in (0, 1) for i in range(n)]
    return {"split": np.array([r[0] for r in rows]), "label": np.array([r[1] for r in rows], np.int8),
            "person": np.array([r[2] for r in rows]), "source": np.array(["expressions"] * len(rows)),
            "gray": np.zeros(len(rows), bool), "face_px": np.full(len(rows), 150, np.int16),
            "file": np.array([f"expressions/images/{i}.jpg" for i in range(len(rows))])}


def test_trained_judge_fits_on_the_train_split_and_scores_the_other():
    rng = np.random.default_rng(22)
    n = 40  # per label and split: neutral (0) and smiling (1) photos of different people
    index = _two_splits(n)
    crops = _faces(len(index["split"]), rng, 0)
    crops[index["label"] == 1, 95:101, 45:83] = 90  # real smiles: a faint mouth
    seen = []

    def edit(x: np.ndarray, lam: float) -> np.ndarray:
        seen.append(len(x))
        y = x.copy()
        if lam > 1:
            y[:, 95:103, 45:83] = 10  # λ = 2: a black bar no real smile has
        else:
            y[:, 95:101, 45:83] = 90  # λ = 1: the real smiles' mouth
        return y

    r = realism.trained_judge(edit, 128, crops, index, None, "val", lams=(1.0, 2.0), train_faces=30, faces=None, batch=16)
    assert r["train_faces"] == 30 and r["faces"] == n
    assert r["ceiling"]["auc"] > 0.9  # unedited neutral faces have no mouth at all
    assert abs(r["per_lambda"]["1"]["auc"] - 0.5) < 0.2
    assert r["per_lambda"]["2"]["auc"] > 0.95
    assert sum(seen) == 2 * (30 + n) and max(seen) <= 16  # both halves edited at each λ, a batch at a time
    table = realism.trained_judge_markdown(r)
    assert "unedited (ceiling)" in table and "λ = +2" in table and "expressions only" in table
    # its context row: the same noise on both sides wherever the faces are painted over
    assert abs(r["context"]["auc"] - 0.5) < 0.25 and "context: unedited, every face painted grey" in table
    with pytest.raises(ValueError, match="train split"):
        realism.trained_judge(edit, 128, crops[:10], {k: v[:10] for k, v in index.items()}, None, "val")
    with pytest.raises(ValueError, match="another"):
        realism.trained_judge(edit, 128, crops, index, None, "train")


def test_each_band_sees_its_own_scale_and_not_the_other():
    """``fine`` ignores a smooth change of light and sees fine marks; ``coarse`` sees the light."""
    rng = np.random.default_rng(3)
    faces = _faces(6, rng, 0)
    lit = np.clip(faces.astype(np.int16) + np.linspace(0, 20, faces.shape[2]).round().astype(np.int16)[None, None, :, None], 0, 255).astype(np.uint8)
    speckled = faces.copy()
    speckled[:, 90:120:2, 40:90:2] = 255  # a grid of single bright pixels over the mouth
    fine, coarse = (realism.band_features(faces, b) for b in ("fine", "coarse"))
    assert coarse.shape == (6, realism.COARSE_GRID[0] * realism.COARSE_GRID[1]) and fine.shape == (6, 1770)
    def moved(x: np.ndarray, band: str, before: np.ndarray) -> float:
        return float(np.abs(realism.band_features(x, band) - before).mean())

    assert moved(lit, "coarse", coarse) > 0.03 and moved(lit, "coarse", coarse) > 5 * moved(lit, "fine", fine)
    assert moved(speckled, "fine", fine) > 4 * moved(lit, "fine", fine)
    np.testing.assert_array_equal(realism.band_features(faces), realism.features(faces))
    with pytest.raises(ValueError, match="unknown band"):
        realism.band_features(faces, "middle")


def test_the_trained_judge_reports_each_band_from_the_same_edits():
    rng = np.random.default_rng(23)
    n = 30
    index = _two_splits(n)
    crops = _faces(len(index["split"]), rng, 0)
    smiling = index["label"] == 1
    crops[smiling] = np.clip(crops[smiling].astype(np.int16) + 30, 0, 255).astype(np.uint8)  # real smiles: brighter
    checker = np.where((np.arange(16)[:, None] + np.arange(30)[None, :]) % 2 == 0, 50, -50).astype(np.int16)
    crops[smiling, 96:112, 50:80] = np.clip(crops[smiling, 96:112, 50:80].astype(np.int16) + checker[None, :, :, None], 0, 255)
    # and a fine pattern of zero mean (teeth): the same light
    seen = []

    def edit(x: np.ndarray, lam: float) -> np.ndarray:
        seen.append(len(x))
        y = np.clip(x.astype(np.int16) + 30, 0, 255).astype(np.uint8)  # the light of a real smile, not its fine pattern
        return y

    r = realism.trained_judge(edit, 128, crops, index, None, "val", lams=(1.0,), train_faces=n, faces=None, batch=16,
                              bands=("fine", "coarse"))
    assert sum(seen) == 2 * n  # edited once for all three judges
    assert set(r["bands"]) == {"fine", "coarse"}
    assert r["bands"]["fine"]["per_lambda"]["1"]["auc"] > 0.9  # the fine pattern is missing
    assert r["bands"]["coarse"]["per_lambda"]["1"]["auc"] < 0.75  # the light is right
    assert r["bands"]["coarse"]["ceiling"]["auc"] > 0.9  # unedited, the light was not
    table = realism.trained_judge_markdown(r)
    assert "fine detail only" in table and "coarse light only" in table
    assert "bands" not in realism.trained_judge(edit, 128, crops, index, None, "val", lams=(1.0,), train_faces=n, faces=None)


def test_separation_finds_the_block_and_orientation_of_the_tell():
    """Edits carry a horizontal edge beside the mouth: the judge's separation lies in that HOG block,
    in the 80–100° orientation bin, and adds up to the gap between the two sides' mean log-odds."""
    rng = np.random.default_rng(0)

    def faces(n: int, edge: bool) -> np.ndarray:
        out = np.clip(rng.normal(128, 12, (n, 256, 256, 3)), 0, 255).astype(np.uint8)
        if edge:  # window rows ~11-14 (block row 1), window columns ~8-22 (block columns 1-2)
            out[:, 153:160, 62:92] = 230
        return out

    x1, x0 = realism.features(faces(30, True)), realism.features(faces(30, False))
    model = realism.fit_logistic(np.vstack([x1, x0]), np.r_[np.ones(30), np.zeros(30)], 1.0)
    sep = realism.separation(model, x1.mean(0), x0.mean(0))
    gap = model.decision(x1).mean() - model.decision(x0).mean()
    assert sep["total"] == pytest.approx(gap, rel=1e-6)
    assert sep["total"] == pytest.approx(sep["hog"] + sep["lbp"], rel=1e-9)
    blocks = sep["hog_blocks"]
    assert blocks.shape == realism.HOG_BLOCKS == (5, 9)
    r, c = np.unravel_index(np.argmax(blocks), blocks.shape)
    assert r in (0, 1, 2) and c in (0, 1, 2, 3), (r, c)
    assert int(np.argmax(sep["hog_orientations"])) == 4  # gradients near 90°: a horizontal edge
    assert sep["lbp_cells"].shape == realism.GRID
    with pytest.raises(ValueError, match="HOG \\+ LBP"):
        realism.separation(model, x1.mean(0)[:10], x0.mean(0)[:10])


def test_the_context_measure_reads_what_lies_outside_every_face_and_nothing_inside(astronaut):
    """``context_area`` / ``context_only`` (and ``evaluate_realism``'s ``context``): the astronaut's face
    is painted over and the corners are kept; two samples that differ only inside the face read as one
    by the context test, and two that differ only in the corners are told apart."""
    import smilecore
    from smilecore.align import CROP_SIZE, align_face, extract_crop

    face = smilecore.detect_faces(astronaut)[0]
    crop = extract_crop(astronaut, align_face(face.landmarks, CROP_SIZE))
    s = CROP_SIZE
    area = realism.context_area(np.stack([crop, crop]))
    assert area.shape == (s, s) and not area[int(0.72 * s), s // 2] and area[int(0.9 * s), 4]  # the mouth; a lower corner
    x0, y0, x1, y1 = (int(round(f * s)) for f in realism.WINDOW)
    assert 0.02 < area[y0:y1, x0:x1].mean() < 0.6
    rng = np.random.default_rng(12)
    n = 40
    base = np.repeat(crop[None], 2 * n, 0).astype(np.int16)
    base += rng.integers(-6, 7, base.shape).astype(np.int16)
    base = np.clip(base, 0, 255).astype(np.uint8)
    inside, corners = base.copy(), base.copy()
    inside[n:, int(0.66 * s) : int(0.78 * s), int(0.38 * s) : int(0.62 * s)] = 30  # a dark band across the mouth
    corners[n:][:, area] = 255 - corners[n:][:, area]  # the context alone inverted
    painted = realism.context_only(inside, area)
    assert (painted[:, ~area] == realism.CONTEXT_GREY).all() and np.array_equal(painted[:, area], inside[:, area])
    person = np.array([f"p{i}" for i in range(2 * n)])
    for pair, told in ((inside, False), (corners, True)):
        f = features(realism.context_only(pair, area))
        r = two_sample_auc(f[n:], f[:n], person[n:], person[:n], np.zeros(n, int), np.zeros(n, int), folds=4, repeats=1)
        assert (r["auc"] > 0.95) if told else (abs(r["auc"] - 0.5) < 0.2)
        whole = features(pair)
        assert two_sample_auc(whole[n:], whole[:n], person[n:], person[:n], np.zeros(n, int), np.zeros(n, int),
                              folds=4, repeats=1)["auc"] > 0.95  # the whole window sees either change
