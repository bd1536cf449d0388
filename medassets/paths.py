"""Every setting medassets reads from the environment, in one place. Each is read when it is
needed (a step, a sensor tick, the definitions being built), never at import time of `defs/`.

- MEDASSETS_HOME: the state folder: asset files, the response cache, prepared models and
  reports (default: `.medassets/` in the repository, which git ignores).
- MEDASSETS_STORAGE_URL: where asset files and reports go, as an fsspec URL (`s3://bucket/prefix`,
  `gs://bucket/prefix`, `file:///shared/medassets`, or a plain folder); default: MEDASSETS_HOME.
  Object stores take their credentials and endpoint from their own standard variables
  (for S3: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL).
- MEDASSETS_POSTGRES_URL: a PostgreSQL URL (`postgresql://user@host:5432/db`, the password
  from PGPASSWORD or ~/.pgpass, never in a file of the project). With it, the response cache
  is a table of that database, and `deploy/dagster.yaml` keeps Dagster's runs and events
  there; default: unset (SQLite files under MEDASSETS_HOME).
- MEDASSETS_REGISTRY: the model registry file (default: `data/models.yaml`).
- MEDASSETS_DATASETS: the dataset config file (default: `data/datasets.yaml`).
- MEDASSETS_ANALYSIS: the analysis settings file (default: `data/analysis.yaml`).
- MEDASSETS_AUTOMATION: `off` (or 0, false, no) starts the sensors and the schedule stopped
  (default: on).
- MEDASSETS_REEVALUATION_CRON: when the weekly re-evaluation observes the models (default:
  Mondays at 03:00, `0 3 * * 1`).
- MEDASSETS_SENSOR_INTERVAL_S: seconds between two evaluations of automation and of the
  registry and verdict sensors (default: 30 for automation, 60 for the sensors); smaller
  reacts sooner to a change and costs the daemon more work.
- MEDASSETS_OPENAI_BASE_URL: overrides every `openai` model's `server.base_url` (for example
  to reach a server through a tunnel); unset by default.
- The API key of an `openai` model is read from the variable its registry entry names
  (`server.api_key_env`, default OPENAI_API_KEY).
- MEDASSETS_REVIEW_URL: where the review page (`make review`) is reached, for the links to it
  in the `comparison` and `error_analysis` metadata (default: http://127.0.0.1:3001). The review
  page answers at this address besides its loopback names.
- MEDASSETS_REVIEW_TOKEN: a fixed access token for the review page (a team instance); default:
  unset (a new random token each start, printed in the URL to open).
- MEDASSETS_SLURM: a Slurm settings file (`deploy/slurm.yaml` is an example); with it, each
  model that needs GPUs generates in a Slurm job of its own. Default: unset (in the step).
- DAGSTER_HOME: Dagster's instance folder; `make run` requires it (the Makefile sets it).

Set for libraries when unset, never read as settings: OMP_NUM_THREADS and
VLLM_CPU_OMP_THREADS_BIND (vLLM on a CPU uses every core) by the vLLM engine; HF_HUB_OFFLINE=1
(nothing is downloaded at run time) by `hub_offline` below, called wherever Hugging Face
libraries are first imported; GX_ANALYTICS_ENABLED=false by `core/quality.py`.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = PROJECT_ROOT / "data"
DEFAULT_REEVALUATION_CRON = "0 3 * * 1"
DEFAULT_REVIEW_URL = "http://127.0.0.1:3001"


def _path(variable: str, default: Path) -> Path:
    return Path(os.environ.get(variable) or default)


def state_dir() -> Path:
    """Asset files, the response cache, prepared models and reports (git ignores it)."""
    return _path("MEDASSETS_HOME", PROJECT_ROOT / ".medassets")


def registry_path() -> Path:
    return _path("MEDASSETS_REGISTRY", DATA_DIR / "models.yaml")


def datasets_path() -> Path:
    return _path("MEDASSETS_DATASETS", DATA_DIR / "datasets.yaml")


def analysis_path() -> Path:
    return _path("MEDASSETS_ANALYSIS", DATA_DIR / "analysis.yaml")


def storage_url() -> str:
    return os.environ.get("MEDASSETS_STORAGE_URL") or str(state_dir())


def postgres_url() -> str | None:
    return os.environ.get("MEDASSETS_POSTGRES_URL") or None


def cache_path() -> Path:
    return state_dir() / "cache" / "responses.sqlite"


def models_dir() -> Path:
    return state_dir() / "models"


def automation_on() -> bool:
    return os.environ.get("MEDASSETS_AUTOMATION", "on").lower() not in ("off", "0", "false", "no")


def reevaluation_cron() -> str:
    return os.environ.get("MEDASSETS_REEVALUATION_CRON") or DEFAULT_REEVALUATION_CRON


def sensor_interval_s() -> int | None:
    value = os.environ.get("MEDASSETS_SENSOR_INTERVAL_S")
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"MEDASSETS_SENSOR_INTERVAL_S: a whole number of seconds, at least 1 (given: {value!r})")
    return int(value)


def openai_base_url(configured: str) -> str:
    """The registry's server URL, unless MEDASSETS_OPENAI_BASE_URL overrides it."""
    return os.environ.get("MEDASSETS_OPENAI_BASE_URL") or configured


def api_key(variable: str) -> str:
    """The API key in the named variable; "EMPTY" (what vLLM's server accepts) when unset."""
    return os.environ.get(variable, "EMPTY")


def review_url() -> str:
    return (os.environ.get("MEDASSETS_REVIEW_URL") or DEFAULT_REVIEW_URL).rstrip("/")


def review_token() -> str | None:
    return os.environ.get("MEDASSETS_REVIEW_TOKEN") or None


def dagster_home() -> str | None:
    return os.environ.get("DAGSTER_HOME") or None


def hub_offline() -> None:
    """Hugging Face libraries read only the local cache, unless the environment says otherwise.
    They read the variable when first imported, and vLLM's engine process inherits it."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def slurm_settings_path() -> Path | None:
    value = os.environ.get("MEDASSETS_SLURM")
    return Path(value) if value else None
