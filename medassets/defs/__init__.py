"""Dagster definitions: partitions, assets, checks, jobs, automation and asset storage."""

import warnings

from dagster import BetaWarning, PreviewWarning

# Partitioned asset checks, single-run backfills and dimension partition mappings are
# preview/beta features of Dagster; we rely on them knowingly.
warnings.filterwarnings("ignore", category=PreviewWarning)
warnings.filterwarnings("ignore", category=BetaWarning)
