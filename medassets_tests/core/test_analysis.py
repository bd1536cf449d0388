"""The analysis settings file: its defaults are the paper's analysis, a bad value is named with
its file, line and field, and its version changes exactly with a setting."""

import pytest

from medassets import paths
from medassets.core.analysis import AnalysisError, AnalysisSettings, load_analysis, parse_analysis


def test_the_shipped_file_is_the_default_analysis():
    assert load_analysis(paths.DATA_DIR / "analysis.yaml") == AnalysisSettings()
    assert parse_analysis("") == AnalysisSettings()  # an empty file: every default


def test_the_version_changes_with_a_setting_not_with_comments_or_order():
    base = parse_analysis("confidence: 0.9\nseed: 3\n")
    assert parse_analysis("# a comment\nseed: 3\nconfidence: 0.9  # level\n").version() == base.version()
    assert parse_analysis("confidence: 0.9\nseed: 4\n").version() != base.version()
    assert parse_analysis("confidence: 0.9\nseed: 3\ngold: adjudicated\n").version() != base.version()


@pytest.mark.parametrize("text, message", [
    ("seed: 0\nconfidence: 1.5\n", r"where:2: `confidence`: Input should be less than 1 \(given: 1.5\)"),
    ("n_resamples: '1000'\n", r"where:1: `n_resamples`: Input should be a valid integer \(given: '1000'\)"),
    ("invalid: negative\ngold: corrected\n", r"where:2: `gold`: Input should be 'original' or 'adjudicated' \(given: 'corrected'\)"),
    ("alpha: 0.05\n", r"where:1: unknown setting 'alpha'; known: \['confidence', 'correction'"),
    ("pairs: reference\n", r"where:1: `pairs: reference` needs `reference`"),
    ("- 0.95\n", r"where:1: the analysis settings are a mapping"),
    ("confidence: [\n", r"where: not valid YAML"),
])
def test_a_bad_setting_is_named_with_its_line_and_field(text, message):
    with pytest.raises(AnalysisError, match=message):
        parse_analysis(text, "where")


def test_an_unreadable_file_is_named(tmp_path):
    with pytest.raises(AnalysisError, match=f"{tmp_path / 'absent.yaml'}: cannot read the analysis settings"):
        load_analysis(tmp_path / "absent.yaml")


def test_a_runs_overrides_are_validated_as_the_file_is():
    settings = AnalysisSettings()
    assert settings.with_overrides({"gold": "adjudicated", "seed": 2}) == AnalysisSettings(gold="adjudicated", seed=2)
    with pytest.raises(AnalysisError, match="run config `confidence`: Input should be greater than 0"):
        settings.with_overrides({"confidence": 0.0})
