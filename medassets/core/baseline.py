"""The supervised baseline: TF-IDF features and a class-weighted logistic regression,
fit on a task's train split and predicting its test split."""

from __future__ import annotations

import numpy as np

from medassets.core.prompts import answer_phrases


CROSS_VALIDATION_FOLDS = 5


def fit_scores(train_texts, train_labels, test_texts, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """The positive class's predicted probability for each test text, and for each train text
    from a model fit without it (stratified 5-fold cross-validation, seeded; None when a class
    has fewer than two train rows): the scores a cut-off can be learned on without the test
    split, and without the optimism of scoring rows the model was fit on."""
    # scikit-learn is imported here, to fit: reading the registry or building a run imports none of it.
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline

    labels = np.asarray(train_labels, dtype=int)
    if len(set(labels)) < 2:
        raise ValueError("the baseline needs both classes in the train split")
    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True),
        LogisticRegression(class_weight="balanced", max_iter=1000, random_state=seed),
    )
    texts = list(train_texts)
    folds = min(CROSS_VALIDATION_FOLDS, int(np.bincount(labels).min()))
    train_scores = None
    if folds >= 2:
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        train_scores = cross_val_predict(model, texts, labels, cv=splitter, method="predict_proba")[:, 1]
    model.fit(texts, labels)
    return model.predict_proba(list(test_texts))[:, 1], train_scores


def answer_phrase(task: str, label: int) -> str:
    """The task's own answer for a label, so a baseline's predictions parse like any model's."""
    positive, negative = answer_phrases(task)
    return positive if label == 1 else negative


def probability_logprobs(probability: float) -> list[float]:
    """The log-probabilities of the positive and the negative class: a score of `probability`
    (the positive share of the two) as a scored answer carries it."""
    with np.errstate(divide="ignore"):
        return [float(np.log(probability)), float(np.log1p(-probability))]
