"""What an engine answered, as data: a scored answer's label and score, and the frames built from answers."""

import math

import pandas as pd
import pytest

from medassets.core.answers import PREDICTION_COLUMNS, Generation, positive_share, prediction_frames, scored_generation
from medassets.core.asking import Request, TaskRequests, task_choices
from medassets.core.cache import ResponseCache

MESSAGES = [{"role": "user", "content": "Is this tweet self-reporting breast cancer?"}]


def test_a_scored_answer_is_the_likelier_side_and_its_share_is_the_score():
    request = Request(MESSAGES, task_choices("breast_cancer", "free", "likelihood"))
    assert request.choices == (
        "the tweet is self-reporting breast cancer", "the tweet is not self-reporting breast cancer",
        "the tweet is not self-reporting potential",
    )
    # Both negative wordings count against the positive: 0.3 alone beats neither 0.4 nor 0.3 + 0.3.
    logprobs = [math.log(0.3), math.log(0.4), math.log(0.3)]
    assert positive_share(logprobs) == pytest.approx(0.3)
    scored = scored_generation(logprobs, prompt_tokens=17)
    assert (scored.text, scored.finish_reason, scored.prompt_tokens, scored.completion_tokens) == ("", "scored", 17, 0)  # no phrase

    def framed(logprobs):
        return prediction_frames({"breast_cancer": TaskRequests(["a"], ["h"], [request])}, [scored_generation(logprobs, 17)])["breast_cancer"].iloc[0]

    assert (framed(logprobs)["label"], framed(logprobs)["text"]) == (0, "")
    assert framed([math.log(0.6), math.log(0.3), math.log(0.1)])["label"] == 1
    assert framed([math.log(0.5), math.log(0.25), math.log(0.25)])["label"] == 0  # a tie is negative
    assert positive_share([-1000.0, -1001.0]) == pytest.approx(1 / (1 + math.exp(-1)))  # no underflow


def test_scored_answers_are_cached_with_their_logprobs_and_framed_with_their_score(tmp_path):
    request = Request(MESSAGES, task_choices("stigma_labeling", "free", "likelihood"))
    scored = scored_generation([-0.5, -2.0], prompt_tokens=9)
    cache = ResponseCache(tmp_path / "cache.sqlite")
    cache.put("k", scored)
    assert cache.get_many(["k"])["k"] == scored
    frames = prediction_frames({"stigma_labeling": TaskRequests(["a"], ["h"], [request])}, [scored])
    frame = frames["stigma_labeling"]
    assert list(frame.columns) == PREDICTION_COLUMNS
    assert frame["score"].iloc[0] == pytest.approx(1 / (1 + math.exp(-1.5)))
    assert list(frame["choice_logprobs"].iloc[0]) == [-0.5, -2.0]
    unscored = prediction_frames({"stigma_labeling": TaskRequests(["a"], ["h"], [request])}, [Generation("x", None, "stop", 1, 1)])
    assert math.isnan(unscored["stigma_labeling"]["score"].iloc[0]) and pd.isna(unscored["stigma_labeling"]["label"].iloc[0])
    # Scored when answers were cached as a phrase: framed as its score alone.
    phrased = Generation("the tweet is stigmatizing", None, "scored", 9, 0, [-0.5, -2.0])
    old = prediction_frames({"stigma_labeling": TaskRequests(["a"], ["h"], [request])}, [phrased])["stigma_labeling"].iloc[0]
    assert (old["text"], old["label"]) == ("", 1)


def test_reasoning_token_counts_are_cached_and_framed_unknown_where_not_counted(tmp_path):
    cache = ResponseCache(tmp_path / "responses.sqlite")
    counted = Generation("a</think> The note involves", None, "stop", 5, 9, reasoning_tokens=4)
    cache.put("counted", counted)
    cache.put("old", Generation("The note involves", None, "stop", 5, 3))
    found = cache.get_many(["counted", "old"])
    assert (found["counted"].reasoning_tokens, found["old"].reasoning_tokens) == (4, None)
    frame = prediction_frames({"stigma_labeling": TaskRequests(["a", "b"], ["h"] * 2, [])}, [found["counted"], found["old"]])["stigma_labeling"]
    assert frame["reasoning_tokens"].tolist() == [4, pd.NA] and str(frame["reasoning_tokens"].dtype) == "Int64"
