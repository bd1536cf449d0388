"""The README stays what a newcomer reads on one screen; the rest lives in docs/ (`make docs`)."""

from conftest import REPO


def test_the_readme_is_at_most_150_lines():
    assert len((REPO / "README.md").read_text().splitlines()) <= 150
