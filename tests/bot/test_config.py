"""bot.config: config.toml + LABMATE_<SECTION>__<KEY> overrides -> typed, path-resolved settings.

Fast: nothing here loads a model or an index.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Settings, default_config_path, load_settings
from core.errors import ConfigError, UserError

REPO = Path(__file__).resolve().parents[2]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# -- defaults and the shipped file ------------------------------------------------------------------


def test_defaults_load_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings(None, env={})
    assert isinstance(settings, Settings)
    assert settings.index.dir == tmp_path / "index"  # relative default, resolved against the cwd
    assert settings.index.sources == []
    assert settings.embedding.model == "default"
    assert settings.embedding.device == "auto"
    assert settings.search.k == 10
    assert settings.search.dense_weight == 0.5


def test_defaults_are_not_shared_between_loads(tmp_path, monkeypatch):
    """Path resolution mutates the loaded settings; it must never leak into the class defaults."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    first = load_settings(None, env={})
    monkeypatch.chdir(tmp_path / "b")
    second = load_settings(None, env={})
    assert first.index.dir == tmp_path / "a" / "index"
    assert second.index.dir == tmp_path / "b" / "index"
    assert Settings().index.dir == Path("index")


def test_repo_config_toml_parses(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # the file's own folder, not the cwd, anchors its relative paths
    settings = load_settings(REPO / "config.toml", env={})
    assert settings.index.dir == REPO / "index"
    assert settings.index.sources == []
    assert settings.index.approximate_after == 200000
    assert settings.index.target_recall == 0.95
    assert settings.index.passage_words == 120
    assert settings.embedding.model == "default"
    assert settings.search.k == 10


def test_default_config_path_prefers_env_then_local_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LABMATE_CONFIG", raising=False)
    assert default_config_path() is None
    write(tmp_path / "config.toml", "")
    assert default_config_path() == Path("config.toml")
    monkeypatch.setenv("LABMATE_CONFIG", str(tmp_path / "elsewhere.toml"))
    assert default_config_path() == tmp_path / "elsewhere.toml"


# -- file errors ------------------------------------------------------------------------------------


def test_unknown_key_in_file_is_named(tmp_path):
    path = write(tmp_path / "c.toml", '[index]\ndirr = "x"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    message = str(info.value)
    assert "unknown key 'index.dirr'" in message
    assert str(path) in message
    assert isinstance(info.value, UserError)  # shown to the user as is, no traceback


def test_unknown_section_in_file_is_named(tmp_path):
    path = write(tmp_path / "c.toml", "[serach]\nk = 3\n")
    with pytest.raises(ConfigError, match="unknown key 'serach'"):
        load_settings(path, env={})


def test_wrong_type_names_key_and_value(tmp_path):
    path = write(tmp_path / "c.toml", '[search]\nk = "ten"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    message = str(info.value)
    assert "search.k" in message
    assert "valid integer" in message
    assert "'ten'" in message


def test_out_of_range_value_is_rejected(tmp_path):
    path = write(tmp_path / "c.toml", "[search]\ndense_weight = 1.5\n")
    with pytest.raises(ConfigError, match="search.dense_weight"):
        load_settings(path, env={})


def test_missing_file_is_a_clear_error(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_settings(missing, env={})
    assert str(missing) in str(info.value)
    assert "does not exist" in str(info.value)


def test_folder_given_as_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        load_settings(tmp_path, env={})


def test_invalid_toml_is_a_config_error(tmp_path):
    path = write(tmp_path / "c.toml", "[index\ndir = 'x'\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert "not valid TOML" in str(info.value)
    assert str(path) in str(info.value)


# -- environment overrides --------------------------------------------------------------------------


def test_env_overrides_apply_and_are_json_parsed(tmp_path):
    settings = load_settings(None, env={"LABMATE_INDEX__DIR": "/tmp/idx", "LABMATE_SEARCH__K": "5"})
    assert settings.index.dir == Path("/tmp/idx")
    assert settings.search.k == 5
    assert isinstance(settings.search.k, int)


def test_env_overrides_win_over_the_file(tmp_path):
    path = write(tmp_path / "c.toml", "[search]\nk = 3\ndense_weight = 0.2\n")
    settings = load_settings(path, env={"LABMATE_SEARCH__K": "7"})
    assert settings.search.k == 7
    assert settings.search.dense_weight == 0.2  # untouched keys keep the file's value


def test_env_names_are_case_insensitive_after_the_prefix():
    assert load_settings(None, env={"LABMATE_Search__K": "4"}).search.k == 4


def test_unrelated_env_variables_are_ignored(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {"LABMATE_CONFIG": "/x.toml", "LABMATE_FAISS_THREADS": "2", "PATH": "/bin", "OTHER__THING": "1"}
    assert load_settings(None, env=env).search.k == 10


def test_env_unknown_key_is_named():
    with pytest.raises(ConfigError) as info:
        load_settings(None, env={"LABMATE_INDEX__DIRR": "x"})
    assert "index.dirr" in str(info.value)
    assert "LABMATE_INDEX__DIRR" in str(info.value)


def test_env_unknown_section_is_named():
    with pytest.raises(ConfigError) as info:
        load_settings(None, env={"LABMATE_SERACH__K": "3"})
    assert "serach" in str(info.value)
    assert "LABMATE_SERACH__K" in str(info.value)


def test_env_wrong_type_names_the_variable():
    with pytest.raises(ConfigError) as info:
        load_settings(None, env={"LABMATE_SEARCH__K": "ten"})
    assert "search.k" in str(info.value)
    assert "LABMATE_SEARCH__K" in str(info.value)


def test_env_list_value(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings(None, env={"LABMATE_INDEX__SOURCES": '["a", "b"]'})
    assert settings.index.sources == [tmp_path / "a", tmp_path / "b"]


def test_env_text_values_that_look_like_json_stay_text(tmp_path, monkeypatch):
    """A folder named 2024 or a model folder named 'true' must not become a number or a bool."""
    monkeypatch.chdir(tmp_path)
    settings = load_settings(None, env={"LABMATE_INDEX__DIR": "2024", "LABMATE_EMBEDDING__MODEL": "true",
                                        "LABMATE_EMBEDDING__DEVICE": '"cpu"'})
    assert settings.index.dir == tmp_path / "2024"
    assert settings.embedding.model == str(tmp_path / "true")
    assert settings.embedding.device == "cpu"  # a JSON-quoted string is still accepted


def test_env_override_inside_a_scalar_fails(tmp_path):
    """`index = "x"` at the top level, then LABMATE_INDEX__DIR: a clear error, not a crash."""
    path = write(tmp_path / "c.toml", 'index = "x"\n')
    with pytest.raises(ConfigError, match="LABMATE_INDEX__DIR.*not a section"):
        load_settings(path, env={"LABMATE_INDEX__DIR": "y"})


# -- relative paths ---------------------------------------------------------------------------------


def test_file_paths_resolve_against_the_file_folder(tmp_path, monkeypatch):
    conf_dir = tmp_path / "lab" / "conf"
    path = write(conf_dir / "labmate.toml",
                 '[index]\ndir = "idx"\nsources = ["papers/", "../library.bib", "/abs/x.bib"]\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    settings = load_settings(path, env={})
    assert settings.index.dir == conf_dir / "idx"
    assert settings.index.sources == [conf_dir / "papers", conf_dir / ".." / "library.bib", Path("/abs/x.bib")]


def test_relative_config_path_argument_resolves_from_cwd(tmp_path, monkeypatch):
    write(tmp_path / "sub" / "c.toml", '[index]\ndir = "idx"\n')
    monkeypatch.chdir(tmp_path)
    settings = load_settings(Path("sub/c.toml"), env={})
    assert settings.index.dir == tmp_path / "sub" / "idx"


def test_env_paths_resolve_against_the_cwd(tmp_path, monkeypatch):
    path = write(tmp_path / "conf" / "c.toml", '[index]\ndir = "from_file"\nsources = ["file_src"]\n')
    cwd = tmp_path / "work"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    settings = load_settings(path, env={"LABMATE_INDEX__DIR": "from_env"})
    assert settings.index.dir == cwd / "from_env"  # where the person typed it
    assert settings.index.sources == [tmp_path / "conf" / "file_src"]  # still from the file
    settings = load_settings(path, env={"LABMATE_INDEX__SOURCES": '["env_src"]'})
    assert settings.index.dir == tmp_path / "conf" / "from_file"
    assert settings.index.sources == [cwd / "env_src"]


def test_home_relative_paths_expand(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = write(tmp_path / "conf" / "c.toml", '[index]\ndir = "~/idx"\n')
    assert load_settings(path, env={}).index.dir == tmp_path / "home" / "idx"


def test_embedding_model_relative_path_resolves_against_the_file_folder(tmp_path, monkeypatch):
    conf_dir = tmp_path / "conf"
    path = write(conf_dir / "c.toml", '[embedding]\nmodel = "models/minilm"\n')
    monkeypatch.chdir(tmp_path)
    assert load_settings(path, env={}).embedding.model == str(conf_dir / "models" / "minilm")
    # "default" is a name, not a path, and absolute paths stay as they are.
    assert load_settings(write(conf_dir / "d.toml", '[embedding]\nmodel = "default"\n'), env={}).embedding.model \
        == "default"
    assert load_settings(write(conf_dir / "e.toml", '[embedding]\nmodel = "/opt/m"\n'), env={}).embedding.model \
        == "/opt/m"


def test_embedding_model_relative_env_path_resolves_against_the_cwd(tmp_path, monkeypatch):
    path = write(tmp_path / "conf" / "c.toml", '[embedding]\nmodel = "models/a"\n')
    monkeypatch.chdir(tmp_path)
    settings = load_settings(path, env={"LABMATE_EMBEDDING__MODEL": "models/b"})
    assert settings.embedding.model == str(tmp_path / "models" / "b")
