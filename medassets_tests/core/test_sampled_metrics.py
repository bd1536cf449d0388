"""Metrics of K sampled answers per item: sampled_f1, majority_vote and
paired_sampled_difference, against independent computations and by coverage simulation."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from medassets.core.metrics import (
    binary_report, majority_vote, mcnemar, paired_sampled_difference, sampled_f1,
)

SKLEARN = {"precision": precision_score, "recall": recall_score, "f1": f1_score}


def sampled_case(rng, n, k, invalid_share=0.1, prevalence=0.3, positive=(4, 2), negative=(1, 4)):
    """Gold labels and an n x k array of sampled labels: an item's samples are 1 with its own
    probability, drawn from Beta(*positive) for a positive item and Beta(*negative) for a
    negative one; a share of samples is invalid (-1 or NaN), a float array then."""
    y_true = (rng.random(n) < prevalence).astype(int)
    p = np.where(y_true == 1, rng.beta(*positive, n), rng.beta(*negative, n))
    labels = (rng.random((n, k)) < p[:, None]).astype(float)
    invalid = rng.random((n, k)) < invalid_share
    labels[invalid] = np.where(rng.random(invalid.sum()) < 0.5, -1, np.nan)
    return y_true, labels


def as_scored(labels):
    """Invalid (-1, NaN) as the negative answer 0."""
    return np.where(labels == 1, 1, 0)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 16])
def test_point_values_equal_sklearn_per_sample(k):
    """Mean, spread and majority vote against scikit-learn on each column, with invalid samples
    and (k even) tied votes."""
    rng = np.random.default_rng(k)
    for _ in range(120 // (k + 2)):
        y_true, labels = sampled_case(rng, int(rng.integers(5, 120)), k)
        report = sampled_f1(y_true, labels, n_resamples=10)
        scored = as_scored(labels)
        vote = (scored.sum(axis=1) > k / 2).astype(int)  # ties (k / 2 positives) negative
        for name, score in SKLEARN.items():
            per_sample = [score(y_true, scored[:, j], zero_division=0) for j in range(k)]
            assert report[f"{name}_per_sample"] == per_sample
            assert report[f"{name}_mean"] == np.mean(per_sample)
            assert report[f"{name}_majority"] == score(y_true, vote, zero_division=0)
            if k > 1:
                assert report[f"{name}_run_sd"] == pytest.approx(np.std(per_sample, ddof=1), abs=1e-15)
            else:
                assert np.isnan(report[f"{name}_run_sd"])
        assert report["invalid"] == np.sum((labels == -1) | np.isnan(labels))
        assert (report["n"], report["k"]) == (len(y_true), k)


def test_majority_labels_by_hand():
    labels = [
        [1, 1, 0, -1],  # 2 of 4: a tie, negative
        [1, 1, 1, None],  # an invalid sample counts as 0: 3 of 4
        [np.nan, 1, 1, 0],  # 2 of 4
        [1, 1, 0, 1],
    ]
    assert majority_vote(labels).tolist() == [0, 1, 0, 1]
    assert majority_vote([[1, 0], [1, 1]]).tolist() == [0, 1]
    assert majority_vote([[1], [0], [-1]]).tolist() == [1, 0, 0]


def test_one_sample_per_item_is_binary_report():
    """With K = 1 the item bootstrap of sampled_f1 resamples what binary_report resamples: the
    intervals agree within Monte Carlo error; the points are equal."""
    y_true, labels = sampled_case(np.random.default_rng(5), 300, 1)
    report = sampled_f1(y_true, labels, n_resamples=20_000, seed=1)
    single = binary_report(y_true, labels[:, 0], n_resamples=20_000, seed=2)
    for name in SKLEARN:
        assert report[f"{name}_mean"] == report[f"{name}_majority"] == single[name]
        assert abs(report[f"{name}_low"] - single[f"{name}_low"]) < 0.01
        assert abs(report[f"{name}_high"] - single[f"{name}_high"]) < 0.01
    assert "one sample per item" in report["notes"][0]


def test_interval_equals_resampling_item_indices():
    """The same draws as an index matrix (one chunk of weights), each resample's columns scored
    from its rows: the percentile interval of the mean over columns, to rounding."""
    y_true, labels = sampled_case(np.random.default_rng(6), 120, 5)
    n_resamples = 2000
    report = sampled_f1(y_true, labels, n_resamples=n_resamples, seed=9)
    rows = np.random.default_rng(9).integers(0, 120, size=(n_resamples, 120))
    truth, called = y_true[rows][:, :, None] == 1, as_scored(labels)[rows] == 1
    tp, fp, fn = (truth & called).sum(1), (~truth & called).sum(1), (truth & ~called).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = {
            "precision": np.nan_to_num(tp / (tp + fp)),
            "recall": np.nan_to_num(tp / (tp + fn)),
            "f1": np.nan_to_num(2 * tp / (2 * tp + fp + fn)),
        }
    for name, per_column in values.items():
        expected = np.quantile(per_column.mean(axis=1), [0.025, 0.975])
        assert [report[f"{name}_low"], report[f"{name}_high"]] == pytest.approx(expected, abs=1e-12)


def test_same_seed_same_report_and_settings_recorded():
    y_true, labels = sampled_case(np.random.default_rng(7), 200, 4)
    first = sampled_f1(y_true, labels, seed=3)
    assert first == sampled_f1(y_true, labels, seed=3)
    assert first["f1_low"] != sampled_f1(y_true, labels, seed=4)["f1_low"]
    assert {k: first[k] for k in ("n_resamples", "confidence", "seed", "invalid_policy", "notes")} == {
        "n_resamples": 1000, "confidence": 0.95, "seed": 3, "invalid_policy": "negative", "notes": [],
    }
    wide = sampled_f1(y_true, labels, seed=3, confidence=0.99)
    assert wide["f1_low"] < first["f1_low"] < first["f1_mean"] < first["f1_high"] < wide["f1_high"]


def test_degenerate_inputs_give_notes():
    no_positive = sampled_f1([0, 0, 0], [[1, 0], [0, 0], [1, 1]], n_resamples=20)
    assert no_positive["f1_mean"] == 0.0 and "no positive items" in no_positive["notes"][0]
    empty = sampled_f1(np.zeros(0), np.zeros((0, 3)), n_resamples=20)
    assert empty["n"] == 0 and empty["f1_low"] == empty["f1_high"] == 0.0 and "no items" in empty["notes"][0]


@pytest.mark.parametrize(
    "y_true, labels, match",
    [
        ([1, 0], [1, 0], "two-dimensional"),
        ([1, 0], [[1, 0], [0, 2]], r"found \[2.0\] at row 1 sample 1"),
        ([1, 0], [[1], [0], [1]], "differ in items: 2 != 3"),
        ([1, 3], [[1], [0]], r"y_true must hold only 0 and 1, found \[3.0\] at rows \[1\]"),
        ([1, 0], [[1, "x"], [0, 0]], "labels must be numeric"),
        ([1, 0], np.zeros((2, 0)), "at least one sample"),
    ],
)
def test_bad_input_raises_a_clear_value_error(y_true, labels, match):
    with pytest.raises(ValueError, match=match):
        sampled_f1(y_true, labels)


# Coverage: the true per-sample F1 of the generative model is that of one very large
# dataset with one sample per item (its own error, about 0.0004, is far below the intervals').


def true_f1(invalid_share):
    y_true, labels = sampled_case(np.random.default_rng(0), 2_000_000, 1, invalid_share=invalid_share)
    return f1_score(y_true, as_scored(labels[:, 0]))


def coverage_band(share, datasets, level=0.95, ses=3):
    se = np.sqrt(level * (1 - level) / datasets)
    return level - ses * se <= share <= level + ses * se


def test_sampled_f1_interval_coverage_by_simulation():
    """95% intervals of the mean per-sample F1 over datasets of several sizes (items x samples)
    cover the true F1 within three Monte Carlo standard errors, per size and pooled.
    `bench_sampled_coverage.py` runs more datasets and sizes."""
    truth = true_f1(invalid_share=0.05)
    rng = np.random.default_rng(13)
    covered_all = 0
    sizes, datasets = [(80, 4), (300, 2), (150, 8)], 250
    for n, k in sizes:
        covered = 0
        for seed in range(datasets):
            report = sampled_f1(*sampled_case(rng, n, k, invalid_share=0.05), n_resamples=500, seed=seed)
            covered += report["f1_low"] <= truth <= report["f1_high"]
        assert coverage_band(covered / datasets, datasets), (n, k, covered / datasets)
        covered_all += covered
    assert coverage_band(covered_all / (len(sizes) * datasets), len(sizes) * datasets)


# The paired comparison


def test_paired_difference_equals_sklearn_accuracies():
    rng = np.random.default_rng(14)
    y_true, labels_a = sampled_case(rng, 90, 4)
    _, labels_b = sampled_case(rng, 90, 3)
    result = paired_sampled_difference(y_true, labels_a, labels_b, n_resamples=200)
    accuracy = {
        name: np.mean([accuracy_score(y_true, column) for column in as_scored(labels).T])
        for name, labels in (("a", labels_a), ("b", labels_b))
    }
    assert result["a"] == pytest.approx(accuracy["a"], abs=1e-15)
    assert result["b"] == pytest.approx(accuracy["b"], abs=1e-15)
    assert result["diff"] == pytest.approx(accuracy["a"] - accuracy["b"], abs=1e-15)
    assert result["low"] <= result["diff"] <= result["high"]
    assert (result["n"], result["k_a"], result["k_b"]) == (90, 4, 3)


def test_paired_interval_equals_resampling_item_indices():
    """The difference's bootstrap against resampling items by an index matrix: the same
    distribution (other draws), so the intervals agree within Monte Carlo error."""
    rng = np.random.default_rng(15)
    y_true, labels_a = sampled_case(rng, 200, 4, invalid_share=0)
    labels_b = np.where(rng.random((200, 4)) < 0.2, 1 - labels_a, labels_a)
    result = paired_sampled_difference(y_true, labels_a, labels_b, n_resamples=20_000, seed=1)
    d = (labels_a == y_true[:, None]).mean(axis=1) - (labels_b == y_true[:, None]).mean(axis=1)
    rows = np.random.default_rng(2).integers(0, 200, size=(20_000, 200))
    expected = np.quantile(d[rows].mean(axis=1), [0.025, 0.975])
    assert [result["low"], result["high"]] == pytest.approx(expected, abs=0.003)


def test_sign_flip_p_value_with_one_sample_is_mcnemars():
    """With one sample per model the sign flips of the discordant items are McNemar's exact null
    distribution: the Monte Carlo p-value is within three of its standard errors of mcnemar's."""
    rng = np.random.default_rng(16)
    for flip_share in (0.05, 0.12, 0.3):
        y_true, labels_a = sampled_case(rng, 150, 1, invalid_share=0)
        flip = rng.random((150, 1)) < flip_share
        labels_b = np.where(flip, 1 - labels_a, labels_a)
        result = paired_sampled_difference(y_true, labels_a, labels_b, n_resamples=20_000, seed=3)
        exact = mcnemar(y_true, labels_a[:, 0], labels_b[:, 0])["p_value"]
        assert abs(result["p_value"] - exact) <= 3 * np.sqrt(exact * (1 - exact) / 20_000) + 1 / 20_001


def test_identical_models_give_zero_and_p_one():
    y_true, labels = sampled_case(np.random.default_rng(17), 100, 3)
    result = paired_sampled_difference(y_true, labels, labels.copy(), n_resamples=300)
    assert (result["diff"], result["low"], result["high"], result["p_value"]) == (0.0, 0.0, 0.0, 1.0)


def test_paired_difference_refuses_mismatched_items():
    with pytest.raises(ValueError, match="labels_a and labels_b differ in items: 2 != 3"):
        paired_sampled_difference([1, 0], [[1], [0]], [[1], [0], [1]])
    with pytest.raises(ValueError, match="labels_b must hold 1, 0"):
        paired_sampled_difference([1, 0], [[1], [0]], [[1], [5]])


def paired_case(rng, n, k, shift):
    """Two models sharing each item's difficulty: b's probability of a correct sample is a's
    lowered by `shift` on the logit scale."""
    y_true = (rng.random(n) < 0.3).astype(int)
    right_a = rng.beta(4, 1.5, n)
    right_b = 1 / (1 + (1 - right_a) / right_a * np.exp(shift))
    samples = rng.random((n, k))
    labels_a = np.where(samples < right_a[:, None], y_true[:, None], 1 - y_true[:, None])
    labels_b = np.where(rng.random((n, k)) < right_b[:, None], y_true[:, None], 1 - y_true[:, None])
    return y_true, labels_a, labels_b, right_a, right_b


def test_paired_sampled_difference_coverage_and_null_rejection_rate():
    """Coverage of the 95% interval of the accuracy difference (true value: the mean of the two
    models' per-item probabilities of a correct sample over a million items), and the sign-flip
    test's rejection rate at 5% when the two models are exchangeable, each within three Monte
    Carlo standard errors."""
    rng = np.random.default_rng(18)
    *_, right_a, right_b = paired_case(np.random.default_rng(0), 1_000_000, 1, shift=0.5)
    truth = float(np.mean(right_a - right_b))
    datasets, covered, rejected = 300, 0, 0
    for seed in range(datasets):
        result = paired_sampled_difference(*paired_case(rng, 120, 4, shift=0.5)[:3], n_resamples=500, seed=seed)
        covered += result["low"] <= truth <= result["high"]
        null = paired_sampled_difference(*paired_case(rng, 120, 4, shift=0.0)[:3], n_resamples=500, seed=seed)
        rejected += null["p_value"] < 0.05
    assert coverage_band(covered / datasets, datasets)
    assert coverage_band(rejected / datasets, datasets, level=0.05)
