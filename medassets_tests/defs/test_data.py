"""The raw_dataset asset's run config (the launchpad's path) reaches the loader: `encoding`."""

import pytest
from dagster import DagsterInstance, materialize

from medassets.core.datasets import DataError
from medassets.defs.data import raw_dataset

TASK = "stigma_labeling"


def run_config(**dataset) -> dict:
    return {"ops": {"raw_dataset": {"config": dataset}}}


def test_encoding_in_run_config_reads_a_cp1252_file(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_bytes("id,text,label\nn1,Pt seen — café visit,1\nn2,naïve to treatment,0\n".encode("cp1252"))
    with DagsterInstance.ephemeral() as instance:
        with pytest.raises(DataError, match=rf"{path}: line 2: not utf-8 text .*set `encoding`"):
            materialize([raw_dataset], partition_key=TASK, instance=instance, run_config=run_config(path=str(path)))
        result = materialize(
            [raw_dataset], partition_key=TASK, instance=instance, run_config=run_config(path=str(path), encoding="cp1252")
        )
    assert result.success
    assert result.output_for_node("raw_dataset")["text"].tolist() == ["Pt seen — café visit", "naïve to treatment"]
