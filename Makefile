# Two entry points that do all the set-up on a fresh machine (see README):
#   make demo   - create .venv, install, run the main job on the built-in demo reference
#   make test   - create .venv, install with test extras, run the test suite
VENV   ?= .venv
PYTHON ?= python3
BIN     = $(VENV)/bin
EXTRAS ?= test,onnx,train,ray
DEMO_OUT ?= out/demo

.PHONY: install demo test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/meta-spliceai demo $(DEMO_OUT)

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) out .pytest_cache
