"""A `preset: deepseek-r1` entry on a real vLLM engine (the embedded SmolLM2-135M): its reply is
opened with `<think>\\n` and continued, a small `max_tokens` cuts each answer inside that reasoning,
and the parsed labels, the reasoning accounting and the run log say so. Beside it, the same model
without the preset shows what the prefix and the reasoning change.

Slow: two generate runs, each starting vLLM (30-70 s on 2 cores).
"""

import pandas as pd
import pytest
from conftest import small_datasets
from tokenizers import Tokenizer

from medassets.core.accounting import accounting_row, generation_cost, item_tokens
from medassets.weights.embedded import EMBEDDED_MODEL_NAME

pytestmark = pytest.mark.slow

TASK = "breast_cancer"
R1, PLAIN = "r1-style", "plain"
MAX_TOKENS = 8
REGISTRY = f"""
models:
  - name: {R1}
    backend: vllm
    source: {{embedded: smollm2-135m-instruct}}
    preset: deepseek-r1
    system_prompt: Answer briefly.
    sampling: {{max_tokens: {MAX_TOKENS}}}
  - name: {PLAIN}
    backend: vllm
    source: {{embedded: smollm2-135m-instruct}}
    system_prompt: Answer briefly.
    sampling: {{max_tokens: {MAX_TOKENS}}}
"""


@pytest.fixture(scope="module")
def workspace(make_workspace, tmp_path_factory):
    workspace = make_workspace(REGISTRY, datasets=small_datasets(tmp_path_factory.mktemp("datasets")))
    workspace.reports = workspace.run(
        f"prepare_data:{TASK}", "prepare_embedded_model", "observe_models",
        f"generate:{R1}|{TASK}", f"generate:{PLAIN}|{TASK}", f"evaluate:{R1}|{TASK}", f"evaluate:{PLAIN}|{TASK}",
    )
    return workspace


def frames(workspace, model: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return tuple(pd.read_parquet(workspace.asset_file(asset, model, TASK)) for asset in ("predictions", "parsed_labels", "reasoning_accounting"))


def materialized(workspace, job: str, model: str, asset: str) -> dict:
    report = next(report for report in workspace.reports if report["job"] == job and report["keys"] == f"{model}|{TASK}")
    return report["materializations"][asset][f"{model}|{TASK}"]


def test_the_preset_settings_are_the_ones_used_and_shown(workspace):
    metadata = materialized(workspace, "generate", R1, "predictions")
    assert (metadata["preset"], metadata["reasoning"], metadata["reply_prefix"]) == ("deepseek-r1", True, "<think>\n")
    assert metadata["sampling"] == {"temperature": 0.6, "top_p": 0.95, "max_tokens": MAX_TOKENS, "seed": 0, "stop": []}
    plain = materialized(workspace, "generate", PLAIN, "predictions")
    assert (plain["preset"], plain["reasoning"], plain["reply_prefix"], plain["sampling"]["temperature"]) == (None, False, None, 0.0)


def test_a_system_prompt_on_a_deepseek_r1_entry_is_warned_of_in_the_generate_log(workspace):
    def warnings(model):
        report = next(report for report in workspace.reports if report["job"] == "generate" and report["keys"] == f"{model}|{TASK}")
        return [log["message"] for log in report["logs"] if log["message"] and "`system_prompt` is set" in log["message"]]

    assert warnings(R1) == [f"{R1}: (preset deepseek-r1) `system_prompt` is set, but DeepSeek-R1's card advises no system "
                            "prompt (every instruction in the user prompt)"]
    assert warnings(PLAIN) == []


def test_the_reply_is_continued_from_its_think_tag(workspace, models_dir):
    """The prefix is prompt: each R1 prompt is the plain one and exactly the tokens of `<think>\\n`
    more (continued: a closed turn and a new reply would add the end of turn and another header),
    and the answer text holds only what the model wrote."""
    r1, _, _ = frames(workspace, R1)
    plain, _, _ = frames(workspace, PLAIN)
    added = (r1.set_index("id")["prompt_tokens"] - plain.set_index("id")["prompt_tokens"]).unique().tolist()
    tokenizer = Tokenizer.from_file(str(models_dir / EMBEDDED_MODEL_NAME / "tokenizer.json"))
    assert added == [len(tokenizer.encode("<think>\n", add_special_tokens=False).ids)]
    assert not r1["text"].str.startswith("<think>").any()


def test_answers_cut_inside_their_reasoning_are_invalid_with_their_own_reason(workspace):
    predictions, labels, _ = frames(workspace, R1)
    assert (predictions["completion_tokens"] <= MAX_TOKENS).all()
    cut_inside = predictions[(predictions["finish_reason"] == "length") & ~predictions["text"].str.contains("</think>")]
    assert len(cut_inside) > 0  # eight tokens are too few for the tiny model to close its reasoning
    by_id = labels.set_index("id")
    assert (by_id.loc[cut_inside["id"], "invalid_reason"] == "reasoning_cut_off").all()
    assert (by_id.loc[cut_inside["id"], "label"] == -1).all() and (by_id.loc[cut_inside["id"], "answer"] == "").all()
    assert (predictions.set_index("id").loc[cut_inside["id"], "reasoning_tokens"] == 0).all()  # none closed
    # The same cut from the model asked plainly is an answer, parsed as usual: never a reasoning reason.
    _, plain_labels, _ = frames(workspace, PLAIN)
    assert not plain_labels["invalid_reason"].isin(["reasoning_cut_off", "reasoning_unclosed"]).any()


def test_the_accounting_row_and_its_metadata(workspace):
    predictions, labels, stored = frames(workspace, R1)
    metadata = materialized(workspace, "generate", R1, "predictions")
    expected = accounting_row(TASK, R1, item_tokens(predictions, labels), generation_cost(metadata))
    row = stored.iloc[0].to_dict()
    assert row.keys() == expected.keys()
    for column, value in expected.items():
        assert (pd.isna(value) and pd.isna(row[column])) or row[column] == pytest.approx(value), column
    cut = int((predictions["finish_reason"] == "length").sum())
    assert (row["items"], row["cut_at_max_tokens"]) == (len(labels), cut)
    assert row["invalid_reasoning_cut_off"] == int((labels["invalid_reason"] == "reasoning_cut_off").sum()) > 0
    assert row["reasoning_tokens_median"] > 0 and row["generation_s_per_1000"] > 0
    assert pd.isna(row["gpu_s_per_1000"]) and row["gpus"] == 0  # vLLM on the CPU: no GPU-seconds
    shown = materialized(workspace, "evaluate", R1, "reasoning_accounting")
    assert f"| {R1} " in shown["accounting"] and "reasoning_cut_off" in shown["accounting"]
    assert shown["reasoning_length_plot"].startswith("![reasoning length by right and wrong answers](data:image/png;base64,")
