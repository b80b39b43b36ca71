"""`config.toml` parsed into typed settings, with `LABMATE_<SECTION>__<KEY>` overrides.

Relative paths in a config file resolve against that file's folder; relative paths given in
the environment resolve against the working directory (where the person typed them).
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, Mapping

from pydantic import ValidationError

from core.errors import ConfigError
from bot.db import mask
from bot.settings import AccessSettings, MetricsSettings, ReportsSettings, SlackSettings, StorageSettings
from bot.settings import WorkspaceSettings
from drafting.settings import DraftingSettings
from retrieval.settings import EmbeddingSettings, IndexSettings, SearchSettings, Section
from training.settings import TrainingSettings

ENV_PREFIX = "LABMATE_"
CONFIG_ENV = "LABMATE_CONFIG"


class Settings(Section):
    """All of labmate's settings; one attribute per `[section]` of config.toml."""

    index: IndexSettings = IndexSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()
    search: SearchSettings = SearchSettings()
    slack: SlackSettings = SlackSettings()
    access: AccessSettings = AccessSettings()
    storage: StorageSettings = StorageSettings()
    drafting: DraftingSettings = DraftingSettings()
    training: TrainingSettings = TrainingSettings()
    reports: ReportsSettings = ReportsSettings()
    workspace: WorkspaceSettings = WorkspaceSettings()
    metrics: MetricsSettings = MetricsSettings()


def default_config_path() -> Path | None:
    """LABMATE_CONFIG, else ./config.toml if present."""
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    local = Path("config.toml")
    return local if local.exists() else None


def load_settings(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read the file (if any), apply environment overrides, validate, resolve paths."""
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    base = Path.cwd()
    if path is not None:
        path = Path(path).expanduser()
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))  # TOML is UTF-8 whatever the locale
        except FileNotFoundError:
            raise ConfigError(f"Config file {path} does not exist; pass an existing file to --config.") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}.") from None
        except (OSError, UnicodeDecodeError) as exc:  # a folder, unreadable, or not text
            raise ConfigError(f"Config file {path} cannot be read ({exc}); pass a TOML file to --config.") from None
        base = path.resolve().parent
    from_env = _apply_env(data, env)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, path, from_env)) from None
    _resolve_paths(settings, base, from_env)
    return settings


def _apply_env(data: dict, env: Mapping[str, str]) -> set[tuple[str, str]]:
    """Overlay LABMATE_SECTION__KEY values (JSON when they parse as JSON, else strings)."""
    applied = set()
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX):].lower().partition("__")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if value is None:
            value = raw
        if _is_text_key(section, key) and not isinstance(value, str):
            value = raw  # a folder named 2024 or a model named "true" is text, not a number
        target = data.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"{name} overrides a key inside [{section}], but {section} is not a section.")
        target[key] = value
        applied.add((section, key))
    return applied


def _is_text_key(section: str, key: str) -> bool:
    """Whether a known key holds a string or a path (so an env value is never JSON-decoded)."""
    section_field = Settings.model_fields.get(section)
    field = section_field and getattr(section_field.annotation, "model_fields", {}).get(key)
    return bool(field) and field.annotation in (str, Path, Path | str)


def _explain(exc: ValidationError, path: Path | None, from_env: set[tuple[str, str]] = frozenset()) -> str:
    where = f" in {path}" if path else ""
    lines = [f"Invalid configuration{where}:"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        section, key = str(err["loc"][0]), (str(err["loc"][1]) if len(err["loc"]) > 1 else "")
        env_names = [f"{ENV_PREFIX}{s.upper()}__{k.upper()}" for s, k in sorted(from_env)
                     if s == section and (k == key or not key)]
        origin = f" (set by {', '.join(env_names)})" if env_names else ""
        if err["type"] == "extra_forbidden":
            variable = f" (or variable {ENV_PREFIX}{section.upper()}__{key.upper()})" if key and not env_names else ""
            lines.append(f"- unknown key '{loc}'{origin or variable}"
                         "; remove it or check its spelling in config.toml's documented keys.")
        else:
            lines.append(f"- {loc}{origin}: {err['msg']} (got {mask(repr(err.get('input')))})")  # no passwords
    return "\n".join(lines)


def _resolve_paths(settings: Settings, base: Path, from_env: set[tuple[str, str]]) -> None:
    cwd = Path.cwd()

    def resolve(section: str, key: str, value: Path) -> Path:
        value = value.expanduser()
        return value if value.is_absolute() else ((cwd if (section, key) in from_env else base) / value)

    idx = settings.index
    idx.dir = resolve("index", "dir", idx.dir)
    idx.sources = [resolve("index", "sources", p) for p in idx.sources]
    if isinstance(settings.storage.database, Path):  # not a postgresql:// URL
        settings.storage.database = resolve("storage", "database", settings.storage.database)
    workspace = settings.workspace
    workspace.demo_sources = [resolve("workspace", "demo_sources", p) for p in workspace.demo_sources]
    model = settings.embedding.model
    if model != "default" and not Path(model).expanduser().is_absolute():
        settings.embedding.model = str(resolve("embedding", "model", Path(model)))
    training = settings.training
    training.data_roots = [resolve("training", "data_roots", p) for p in training.data_roots]
    for key in ("specs_dir", "runs_dir", "database"):
        setattr(training, key, resolve("training", key, getattr(training, key)))
    drafting = settings.drafting
    drafting.cache_dir = resolve("drafting", "cache_dir", drafting.cache_dir)
    # For the openai backend the model is a name the server knows, not a path.
    if drafting.backend != "openai" and drafting.model != "default" and not Path(drafting.model).expanduser().is_absolute():
        drafting.model = str(resolve("drafting", "model", Path(drafting.model)))
