"""`python -m medassets.check`: this machine's settings (paths.py), checked before a deployment
starts Dagster on it: the model registry, the dataset config and the analysis settings load, the response cache
opens (PostgreSQL when MEDASSETS_POSTGRES_URL is set), the asset storage can be written, and,
when MEDASSETS_SLURM is set, its settings load and the cluster's controller answers.
Prints one line per check, and one per warning (settings that are valid but likely not meant: what a
model card advises against, several samples per item under greedy decoding); exits 1 if any failed,
each failure naming its setting."""

import sys

from medassets import paths
from medassets.core.analysis import load_analysis
from medassets.core.cache import open_response_cache
from medassets.core.datasets import read_dataset_config
from medassets.core.registry import load_registry
from medassets.core.slurm import load_deployment, ping
from medassets.defs.io import AssetStorage


# Each check fails with an exception naming the setting, or returns its warnings (None: none).


def _registry() -> list[str]:
    return [f"model {name!r}: {warning}" for name, spec in load_registry(paths.registry_path()).items() for warning in spec.warnings()]


def _datasets() -> None:
    read_dataset_config(paths.datasets_path())


def _analysis() -> None:
    load_analysis(paths.analysis_path())


def _cache() -> None:
    open_response_cache(paths.postgres_url(), paths.cache_path()).close()


def _slurm() -> None:
    settings = paths.slurm_settings_path()
    if settings:  # unset: generation stays in the step
        load_deployment(settings)
        ping()


CHECKS = {
    "model registry (MEDASSETS_REGISTRY)": _registry,
    "dataset config (MEDASSETS_DATASETS)": _datasets,
    "analysis settings (MEDASSETS_ANALYSIS)": _analysis,
    "response cache (MEDASSETS_POSTGRES_URL, else MEDASSETS_HOME)": _cache,
    "asset storage (MEDASSETS_STORAGE_URL, else MEDASSETS_HOME)": lambda: AssetStorage().check(),
    "Slurm (MEDASSETS_SLURM, when set)": _slurm,
}


def main() -> int:
    failed = 0
    for name, check in CHECKS.items():
        try:
            warnings = check() or []
        except Exception as exc:  # every failure is reported, then the exit code says so
            failed += 1
            print(f"FAILED {name}: {exc}")
        else:
            print(f"ok     {name}")
            for warning in warnings:
                print(f"warn   {name}: {warning}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
