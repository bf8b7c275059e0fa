# Two commands do all the set-up on a fresh clone: `make demo` (the main job) and `make test`.
# Each creates .venv and installs what is missing first.
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU-friendly pins that install from PyPI anywhere (and from the local disk on the project's machines).
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install install-dev demo test export-check notebooks-check chromium nbtest pytest readme run-nb
# what `fit3d demo` needs; the tests and notebooks add their tools (nbdev, jupyterlab, pytest, kaleido) on top
install: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PINS)
	$(PY) -m pip install -q -e .
	touch $@
install-dev: $(VENV)/.installed-dev
$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

demo: install
	$(VENV)/bin/fit3d demo $(ARGS)

# nbs/ is the source of truth: exporting must leave fit3d/ unchanged.
export-check: install-dev
	@tmp=$$(mktemp -d); cp -a fit3d nbs/llms.txt $$tmp/; $(VENV)/bin/nbdev-export; \
	if diff -r -x __pycache__ $$tmp/fit3d fit3d && diff $$tmp/llms.txt nbs/llms.txt; then \
	  echo "export-check: fit3d/ and nbs/llms.txt match nbs/"; rm -rf $$tmp; \
	else echo "export-check: nbdev-export changed fit3d/ or nbs/llms.txt (edit the notebook, not the .py)"; rm -rf $$tmp; exit 1; fi
	@$(PY) .ci/readme.py nbs/index.ipynb | cmp -s - README.md && echo "export-check: README.md matches nbs/index.ipynb" \
	  || (echo "export-check: README.md is out of date: run make readme"; exit 1)

# README.md is generated from nbs/index.ipynb (its markdown and visible code cells) by .ci/readme.py. nbdev-readme
# does the same through Quarto, which cannot be installed from PyPI without downloading a binary.
readme: install-dev
	$(PY) .ci/readme.py nbs/index.ipynb > README.md

# Notebooks are read as chapters: each saved with its outputs (pictures, tables, figures) after running, opening with
# only `# Title` and `> summary`, and with an exported introduction (which puts its module into llms.txt).
notebooks-check: install-dev
	$(PY) -c 'from fit3d.figures import check_notebooks; check_notebooks("nbs")'

# Run notebooks in place and save them with their outputs; cells flagged cuda (and slow, unless FLAGS=slow) keep the
# outputs saved where they last ran: `make run-nb NB="nbs/07_probe.ipynb nbs/07a_protocol.ipynb" FLAGS=slow`
run-nb: install-dev
	PATH=$(VENV)/bin:$$PATH $(PY) .ci/run_nb.py $(NB) --flags $(FLAGS)

# The viewer, the web demo, the screenshots and kaleido's plots need Chromium: where none is found, install it if this
# user can (root with apt-get), else run everything else and end with one line naming what was skipped and how to run
# it (.ci/browser.py). Notebook cells that need a browser are flagged `#| browser`; under CI=true they always run.
chromium: install-dev
	@$(PY) .ci/browser.py install

nbtest: install-dev chromium
	$(VENV)/bin/nbdev-test --n-workers 2 --timing $$($(PY) .ci/browser.py flags)

pytest: install-dev chromium
	$(VENV)/bin/python -m pytest -q tests

test: export-check notebooks-check nbtest pytest
	@$(PY) .ci/browser.py note
