# vrscope: `make demo` renders (or opens) the bundled sample, `make test` runs everything.
SHELL := /bin/bash
V := .venv/bin
SAMPLE := assets/sample/fibsem.zarr

.PHONY: setup demo test bench lint lock clean

setup:
	@scripts/setup.sh

demo: setup
	@$(V)/vrscope demo --sample $(SAMPLE)

test:
	@scripts/test.sh

bench: setup
	@VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow $(V)/python tests/benchmarks/run_all.py

# Re-resolve requirements-lock.txt after a change to pyproject.toml (keeps the pins that still
# fit; `make lock ARGS=--upgrade` takes the newest allowed). See docs/development.md.
lock:
	@scripts/lock.sh $(ARGS)

lint: setup
	@$(V)/ruff check . && $(V)/ruff format --check . && $(V)/mypy analysis viewer vrscope xrmode && $(V)/lint-imports

clean:
	rm -rf .venv assets/sample out
