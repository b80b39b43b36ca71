"""The /papers command language (shared by Slack and the CLI)."""

from __future__ import annotations

import pytest

from bot.router import describe, parse_papers
from core.errors import QueryError


def test_parse_options_and_words():
    request = parse_papers('graph neural networks year:2019-2023 author:kipf k:5 collection:nlp')
    assert (request.query, request.years, request.author, request.k, request.collection) == (
        "graph neural networks", (2019, 2023), "kipf", 5, "nlp")
    assert describe(request) == "“graph neural networks” · 2019–2023 · author kipf · collection nlp"


def test_help_and_errors():
    assert parse_papers("").help and parse_papers("help").help
    assert parse_papers("like:cohan2020specter").like == "cohan2020specter"
    with pytest.raises(QueryError, match="k:0"):
        parse_papers("x k:0")
    with pytest.raises(QueryError, match="backwards"):
        parse_papers("x year:2023-2019")
    with pytest.raises(QueryError, match="Add some words"):
        parse_papers("year:2020")
    assert parse_papers("unbalanced \"quote").query == 'unbalanced "quote'
