# Two entry points that do all the set-up on a fresh machine (see README):
#   make demo   - create .venv, install (core + [train]), run the main job on the built-in demo reference
#   make test   - create .venv, install with the test extras, run the test suite
# Neither installs PyTorch: the CPU path runs on ONNX Runtime (`pip install -e ".[torch]"` adds CUDA/bfloat16).
VENV   ?= .venv
PYTHON ?= python3
BIN     = $(VENV)/bin
TEST_EXTRAS ?= test,train,ray
DEMO_EXTRAS ?= train
DEMO_OUT ?= out/demo

.PHONY: install install-demo demo test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# one stamp per set of extras: `make demo` then `make test` installs the test extras on top
$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[$*]"
	touch $@

install: $(VENV)/.installed-$(TEST_EXTRAS)

install-demo: $(VENV)/.installed-$(DEMO_EXTRAS)

demo: install-demo
	$(BIN)/meta-spliceai demo $(DEMO_OUT)

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) out .pytest_cache
