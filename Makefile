# Two commands for a fresh machine (see README):
#   make reproduce   set up .venv and run the papermill reproduction (default profile;
#                    PROFILE=smoke for the 5-minute pipeline check, PROFILE=full on a GPU box)
#   make test        set up .venv and run the test suite
PYTHON ?= python3
VENV ?= .venv
# torch is installed first so that a CPU-only machine does not pull a CUDA build
# through the unpinned dependency; override e.g. TORCH_SPEC="torch" on a GPU box.
TORCH_SPEC ?= torch==2.13.0
PROFILE ?= default
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup reproduce test benchmark lab book clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install "$(TORCH_SPEC)"
	$(PY) -m pip install -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

reproduce: $(STAMP)
	$(PY) -m panns_core.study --profile $(PROFILE)

test: $(STAMP)
	$(PY) -m pytest -q -n 2

# JupyterLab on notebooks/ with the project's kernel; jupytext pairs .py and .ipynb on save.
# The notebooks open on the profile the pipeline last ran (runs/last_profile.json); `make lab
# PROFILE=smoke` opens them on another one (PANNS_PROFILE, read by notebook_inputs.open_profile).
LAB_PROFILE := $(if $(filter command line environment,$(origin PROFILE)),PANNS_PROFILE=$(PROFILE),)
lab: $(STAMP)
	$(LAB_PROFILE) $(PY) -m jupyter lab --notebook-dir=notebooks

# The course site (static HTML) from the executed notebooks of the last profile run:
# runs/<profile>/book/html/index.html (`make book PROFILE=smoke` for another profile's run).
BOOK_PROFILE := $(if $(filter command line environment,$(origin PROFILE)),--profile $(PROFILE),)
book: $(STAMP)
	$(PY) -m panns_core.study.course book $(BOOK_PROFILE)

benchmark: $(STAMP)
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf runs figures/*/ .pytest_cache
