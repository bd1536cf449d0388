"""An ensemble's vote, rule by rule, and its labels from its members' parsed labels."""

import numpy as np
import pandas as pd
import pytest

from medassets.core.ensemble import ensemble_labels, rules_version, vote
from medassets.core.registry import EnsembleModel

# One row per item, one column per member: 1, 0 or -1 (invalid).
VOTES = np.array([
    [1, 1, 0],    # two of three positive
    [1, 0, 0],    # one of three
    [1, 1, 1],    # all
    [1, 0, -1],   # a tie once the invalid answer abstains
    [1, -1, -1],  # one counted vote
    [-1, -1, -1], # none counted
])


@pytest.mark.parametrize(
    "options, expected",
    [
        ({"rule": "majority"}, [1, 0, 1, 0, 1, -1]),
        ({"rule": "majority", "tie": "positive"}, [1, 0, 1, 1, 1, -1]),
        ({"rule": "majority", "tie": "invalid"}, [1, 0, 1, -1, 1, -1]),
        ({"rule": "majority", "invalid_member": "negative"}, [1, 0, 1, 0, 0, 0]),
        ({"rule": "any"}, [1, 1, 1, 1, 1, -1]),
        ({"rule": "all"}, [0, 0, 1, 0, 1, -1]),
        ({"rule": "all", "invalid_member": "negative"}, [0, 0, 1, 0, 0, 0]),
    ],
    ids=["majority", "tie-positive", "tie-invalid", "invalid-negative", "any", "all", "all-invalid-negative"],
)
def test_vote(options, expected):
    assert vote(VOTES, **options).tolist() == expected


def test_an_unknown_rule_is_an_error():
    with pytest.raises(ValueError, match="rule must be majority, any or all"):
        vote(VOTES, rule="most")


def _members() -> dict[str, pd.DataFrame]:
    """VOTES as three members' parsed labels, each in its own order of the items."""
    ids = [f"item-{i}" for i in range(len(VOTES))]
    gold = [1, 0, 1, 0, 1, 0]
    frames = {}
    for column, name in enumerate(("a", "b", "c")):
        frame = pd.DataFrame({"id": ids, "gold": gold, "label": VOTES[:, column]})
        frames[name] = frame if column == 0 else frame.iloc[::-1]
    return frames


def test_ensemble_labels_vote_on_each_item_and_say_why_one_is_invalid():
    labels = ensemble_labels(_members(), rule="majority", tie="invalid", invalid_member="abstain")
    assert labels.columns.tolist() == ["id", "gold", "label", "invalid_reason", "votes"]
    assert labels["id"].tolist() == [f"item-{i}" for i in range(len(VOTES))] and labels["gold"].tolist() == [1, 0, 1, 0, 1, 0]
    assert labels["label"].tolist() == vote(VOTES, rule="majority", tie="invalid").tolist()
    assert labels["invalid_reason"].tolist()[3:] == ["tied vote", pd.NA, "no member's vote counted"]
    assert labels["invalid_reason"].isna().tolist()[:3] == [True] * 3
    assert labels["votes"].iloc[3] == "a=1, b=0, c=invalid"


def test_ensemble_labels_name_a_member_missing_an_item():
    members = _members()
    members["b"] = members["b"].iloc[1:]
    with pytest.raises(ValueError, match=r"member 'b' has no label for 1 of the 6 test items \(first: item-5\)"):
        ensemble_labels(members, rule="majority", tie="negative", invalid_member="abstain")


def test_rules_version_changes_with_the_members_and_rules_only():
    vote_a = EnsembleModel(name="vote-a", members=["a", "b"], rule="any")
    assert rules_version(vote_a) == rules_version(EnsembleModel(name="vote-b", members=["a", "b"], rule="any"))
    for changed in ({"members": ("a", "c")}, {"rule": "all"}, {"tie": "positive"}, {"invalid_member": "negative"}):
        assert rules_version(vote_a.model_copy(update=changed)) != rules_version(vote_a), changed
