# The two commands a newcomer needs: `make run` and `make test`. Both set everything up.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed-stamp

.PHONY: install run test test-fast lint openapi bench clean constraints

# constraints.txt pins the tested version of every package (the image and CI use it too).
$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(VENV)/bin/xsn run

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

openapi: install
	$(VENV)/bin/xsn openapi

bench: install
	$(PY) -m bench.gm

clean:
	rm -rf var .pytest_cache

# Re-pin after a change to the dependencies in pyproject.toml: the newest versions within its
# ranges, resolved in a clean virtualenv (nothing left over from .venv), then `make install`.
constraints:
	rm -rf .constraints-venv
	$(PYTHON) -m venv .constraints-venv
	.constraints-venv/bin/pip install --quiet --upgrade pip
	.constraints-venv/bin/pip install --quiet '.[test]' import-linter
	sed -n '/^#/p' constraints.txt > constraints.txt.new
	.constraints-venv/bin/pip freeze --exclude-editable | grep -v '^xsn' >> constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf .constraints-venv build
