"""The supervised baseline: TF-IDF features and a class-weighted logistic regression,
fit on a task's train split and predicting its test split."""

from __future__ import annotations

import numpy as np

from medassets.core.prompts import answer_phrases


def fit_predict(train_texts, train_labels, test_texts, *, seed: int = 0) -> np.ndarray:
    """Predicted labels (0/1) for the test texts."""
    # scikit-learn is imported here, to fit: reading the registry or building a run imports none of it.
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    labels = np.asarray(train_labels, dtype=int)
    if len(set(labels)) < 2:
        raise ValueError("the baseline needs both classes in the train split")
    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True),
        LogisticRegression(class_weight="balanced", max_iter=1000, random_state=seed),
    )
    model.fit(list(train_texts), labels)
    return model.predict(list(test_texts)).astype(int)


def answer_phrase(task: str, label: int) -> str:
    """The task's own answer for a label, so a baseline's predictions parse like any model's."""
    positive, negative = answer_phrases(task)
    return positive if label == 1 else negative
