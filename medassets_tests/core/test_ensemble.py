"""An ensemble's vote, rule by rule."""

import numpy as np
import pytest

from medassets.core.ensemble import vote

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
