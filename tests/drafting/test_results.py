"""The results section: metrics files, the table, number checking, and drafting with fake models.

The fake generators implement the `Generator` protocol for real: they honour `stop` and
`max_new_tokens`, stream their text through `on_text` in pieces and report tokens and seconds.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.errors import NotFoundError, UserError
from drafting.numbers import format_value, matches_value
from drafting.results import (Metrics, check_numbers, draft_results, load_metrics, matches, normalize_metrics,
                              numbers_in, results_table)

from tests.drafting.fakes import ScriptedGenerator

DATA = Path(__file__).parent / "data"
FLAT = {"eval_f1": 0.8712, "eval_precision": 0.85, "eval_recall": 0.893, "eval_loss": 0.31, "epoch": 3}


def claim(prompt: str) -> str:
    """The claim the drafter asked for: the prompt's sentence to rephrase, without its capital and stop."""
    sentence = prompt.split("\n")[0]
    return sentence[0].lower() + sentence[1:-1]


def correct_writer() -> ScriptedGenerator:
    return ScriptedGenerator(lambda p: f"In our experiments, {claim(p)}. This shows 0.99 too.\nNext line 42.")


def wrong_writer() -> ScriptedGenerator:
    return ScriptedGenerator(lambda p: f"Overall, {claim(p).replace('0.8712', '0.88')}.")


def metrics(data=None) -> Metrics:
    return normalize_metrics(FLAT if data is None else data, "test")


# --- Loading --------------------------------------------------------------------------------------

def test_load_flat_shape():
    m = normalize_metrics(load_metrics(DATA / "metrics_flat.json"), "flat")
    assert m.values["eval_f1"] == 0.8712 and m.values["epoch"] == 3.0
    assert not m.per_type and not m.best and m.task is None


def test_load_wrapped_shape_reads_meta_and_seqeval_types():
    m = normalize_metrics(load_metrics(DATA / "metrics_wrapped.json"), "wrapped")
    assert (m.run, m.task, m.model, m.dataset) == ("ncbi-bert-3ep", "token-classification", "bert-base-cased",
                                                  "ncbi-disease")
    assert m.values["eval_overall_f1"] == 0.8712
    assert m.per_type == {"Disease": {"precision": 0.8534, "recall": 0.8897, "f1": 0.8712, "number": 787}}
    assert "fp16" not in m.values  # booleans are not numbers


def test_load_training_service_shape():
    m = normalize_metrics(load_metrics(DATA / "metrics_run.json"), "run")
    assert m.run == "run-2024-06-02-a7f3" and m.model == "dmis-lab/biobert-base-cased-v1.1"
    assert m.values["eval_f1"] == 0.8712 and m.best["eval_f1"] == 0.8758 and m.best["step"] == 686
    assert len(m.history) == 3 and m.per_type["Disease"]["support"] == 787
    assert m.extra["config.num_train_epochs"] == 3  # the run's settings are numbers the text may use


def test_nested_numbers_are_flattened_and_non_finite_dropped():
    m = metrics({"eval": {"f1": 0.9, "loss": float("nan")}, "ok": True, "name": "x"})
    assert m.values == {"eval.f1": 0.9}


def test_run_without_final_uses_best_then_history():
    assert metrics({"best": {"eval_f1": 0.8}}).values == {"eval_f1": 0.8}
    assert metrics({"history": [{"step": 1, "eval_f1": 0.5}, {"step": 2, "eval_f1": 0.6}]}).values["eval_f1"] == 0.6


@pytest.mark.parametrize("content, wanted", [
    (None, "does not exist"),
    ('{"eval_f1": 0.87,,}', "not valid JSON"),
    ("[0.87, 0.85]", "not a JSON object"),
    ('{"done": true, "eval_f1": "0.87"}', "no numeric metric"),  # booleans and strings are not numbers
])
def test_bad_metrics_files_name_the_file_and_the_shape(tmp_path, content, wanted):
    path = tmp_path / "metrics.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError) as raised:
        load_metrics(path)
    message = str(raised.value)
    assert wanted in message and str(path) in message and '"final"' in message and "eval_f1" in message


@pytest.mark.parametrize("fixture, wanted", [("invalid.json", "not valid JSON"), ("no_numbers.json", "no numeric")])
def test_bad_fixture_files(fixture, wanted):
    with pytest.raises(UserError, match=wanted):
        load_metrics(DATA / fixture)


def test_missing_file_is_not_found():
    with pytest.raises(NotFoundError):
        load_metrics(DATA / "nope.json")


# --- The table ------------------------------------------------------------------------------------

def test_table_shows_headline_metrics_with_pretty_names_and_exact_values():
    table = results_table(FLAT)
    assert table.splitlines()[:2] == ["| Metric | Value |", "|---|---:|"]
    for row in ["| F1 | 0.8712 |", "| Precision | 0.8500 |", "| Recall | 0.8930 |", "| Loss | 0.3100 |",
                "| Epochs | 3 |"]:
        assert row in table
    assert table.index("F1") < table.index("Precision") < table.index("Loss") < table.index("Epochs")


def test_table_leaves_out_runtime_and_throughput():
    table = results_table(load_metrics(DATA / "metrics_flat.json"))
    assert "runtime" not in table.lower() and "second" not in table and "| Accuracy | 0.9861 |" in table


def test_table_has_best_column_split_names_and_per_type_rows():
    table = results_table(load_metrics(DATA / "metrics_run.json"))
    assert "| Metric | Final | Best |" in table and "| F1 | 0.8712 | 0.8758 |" in table
    assert "| Loss (dev) | 0.0581 | 0.0544 |" in table and "| Loss (train) | 0.0412 | – |" in table
    assert "| Steps | 1029 | 686 |" in table and "| Epochs | 3 | 2 |" in table
    assert "| Entity type | Precision | Recall | F1 | Support |" in table
    assert "| Disease | 0.8534 | 0.8897 | 0.8712 | 787 |" in table


def test_unknown_metric_names_are_code_spans_so_their_digits_are_not_numbers():
    table = results_table({"ndcg@10": 0.6451, "eval_macro_f1": 0.7})
    assert "| `ndcg@10` | 0.6451 |" in table and "| Macro-F1 | 0.7000 |" in table


@pytest.mark.parametrize("fixture", ["metrics_flat.json", "metrics_wrapped.json", "metrics_run.json"])
def test_every_number_in_the_table_is_a_metric(fixture):
    m = normalize_metrics(load_metrics(DATA / fixture), fixture)
    assert check_numbers(results_table(m), m) == []


@pytest.mark.parametrize("value, shown", [(0.8712, "0.8712"), (0.85, "0.8500"), (0.87125678, "0.8713"), (3, "3"),
                                          (5e-05, "5e-05"), (12.3456, "12.35"), (1.5, "1.500"), (1234.5678, "1234.57")])
def test_values_are_formatted_consistently_and_match_themselves(value, shown):
    assert format_value(value) == shown
    assert matches(shown, [value])


# --- Number extraction and matching ---------------------------------------------------------------

@pytest.mark.parametrize("text, numbers", [
    ("an F1 of 0.8712.", [0.8712]),
    ("87.1% and 87.1 % and 87 percent", [87.1, 87.1, 87]),
    ("5,424 sentences and 1,000,000 tokens", [5424, 1000000]),
    ("a change of -0.02 (−0.5 in loss) and +3", [-0.02, -0.5, 3]),
    ("a learning rate of 1e-4 or 5E-05, or 1.5e+3", [1e-4, 5e-05, 1500]),
    ("as shown in [3], [1, 2] and [4-6]", []),
    ("BERT-base, SmolLM2-135M, GPT-4, F1, COVID-19, v1.1, 1.2.3, the 2nd run, 100k steps", []),
    ("the `ndcg@10` metric", []),
    ("precision 0.85,recall 0.89; range 0.5-0.7", [0.85, 0.89, 0.5, 0.7]),
    ("it was .87 after 3 epochs.", [0.87, 3]),
    ("three epochs", []),
])
def test_numbers_in_prose(text, numbers):
    assert [n.value for n in numbers_in(text)] == pytest.approx(numbers)


def test_numbers_keep_how_they_were_written():
    pct, = numbers_in("87.1 %")
    assert pct.percent and pct.decimals == 1 and pct.text == "87.1 %"
    count, = numbers_in("5,424")
    assert count.is_integer and count.value == 5424


@pytest.mark.parametrize("written, ok", [
    ("0.8712", True), ("0.871", True), ("0.87", True), ("87.12%", True), ("87.1 %", True), ("87%", True),
    ("0.88", False), ("0.8713", False), ("0.9", False), ("87.2%", False), ("1", False), ("0.8712%", False),
    ("87.12", False),  # a bare 87.12 is not 0.8712: a percentage needs its % sign
])
def test_matching_at_the_precision_written(written, ok):
    assert matches(written, [0.8712]) is ok


@pytest.mark.parametrize("written, values, ok", [
    ("3", [3], True), ("3", [3.0], True), ("3", [2.9], False), ("5,424", [5424], True), ("960", [960.0], True),
    ("0.5", [0.5], True),        # coarse, but exact
    ("1e-4", [1e-4], True), ("1e-4", [1.2e-4], False), ("5e-05", [5e-05], True), ("-0.5", [-0.5], True),
    ("87.12%", [87.12], True),   # a metric already on a 0-100 scale
    ("2021", [0.8712, 3], False),
])
def test_integers_counts_and_exact_values(written, values, ok):
    assert matches(written, values) is ok


def test_matches_uses_the_whole_metrics_file():
    m = normalize_metrics(load_metrics(DATA / "metrics_run.json"), "run")
    for written in ["787", "686", "0.8758", "5e-05", "16", "3"]:  # support, best step, best F1, config values
        assert matches(written, m), written
    assert not matches("0.8216", m)  # an intermediate evaluation is history, not a result
    assert not matches_value(numbers_in("0.88")[0], 0.8712)


def test_check_numbers_lists_each_unmeasured_number():
    assert check_numbers("F1 was 0.8712 [2] with BERT-base after 3 epochs.", FLAT) == []
    assert check_numbers("F1 was 0.88 in 2021.", FLAT) == ["0.88 is not in the metrics", "2021 is not in the metrics"]


# --- Drafting -------------------------------------------------------------------------------------

def test_correct_writer_keeps_the_model_sentences():
    updates: list[str] = []
    gen = correct_writer()
    text, warnings, stats = draft_results(FLAT, gen, on_update=updates.append)
    assert warnings == [] and stats["fallbacks"] == 0 and stats["sentences"] == len(gen.prompts) == 3
    table, paragraph = text.split("\n\n")
    assert table == results_table(FLAT)
    assert paragraph.startswith("In our experiments, the model reached an F1 of 0.8712 on the development set.")
    assert "precision (0.8500) was lower than recall (0.8930)" in paragraph and "0.3100" in paragraph
    assert "0.99" not in paragraph and "42" not in paragraph  # only the first sentence, only the first line
    assert stats["tokens"] > 0 and stats["seconds"] > 0
    assert updates[0] == table and updates[-1] == text and len(updates) > 10
    assert any(u.endswith("In our experiments, the model") for u in updates)  # streamed as it arrives


def test_prompts_give_the_exact_values():
    gen = correct_writer()
    draft_results(FLAT, gen)
    assert gen.prompts[0].startswith("The model reached an F1 of 0.8712 on the development set.\n\nRephrase")
    assert "Keep the numbers exactly as written." in gen.prompts[0]


def test_wrong_number_is_replaced_with_the_measured_value():
    text, warnings, stats = draft_results(FLAT, wrong_writer())
    assert warnings == ["sentence 1: model wrote 0.88, which is not in the metrics; replaced with the measured value"]
    assert "0.88 " not in text and "The model reached an F1 of 0.8712 on the development set." in text
    assert stats["fallbacks"] == 1 and stats["sentences"] == 3
    assert "Overall, precision (0.8500)" in text  # the other sentences are the model's


@pytest.mark.parametrize("reply, problem", [
    ("", "model wrote nothing"),
    ("the the the the the the", "not write a usable sentence"),
    ("$$$ 0.8712 %%% ***", "not write a usable sentence"),
    ("I think the F1 was 0.8712.", "model wrote about itself"),
    ("As an AI language model, I cannot report an F1 of 0.8712.", "model wrote about itself"),
    ("The F1 of 0.8712 was strong " + "and very good " * 20 + ".", "words (more than 50)"),
    ("The model reached an F1 of 0.8712 [1].", "not write a usable sentence"),
    ("The model reached an F1 of `0.88` and 0.8712.", "not write a usable sentence"),
    ("The model performed well on the development set.", "model did not state 0.8712"),
    ("The model reached an F1 of eighty-seven percent.", "model did not state 0.8712"),
    ("The model reached an F1 of 0.8712 and " + "more words follow " * 40, "cut off"),
    ("Rephrased, the model reached an F1 of 0.8712 on the development set.", "about its task"),
    ("The results section of a paper contains the F1 (0.8712).", "about its task"),
    ("The model reached an F1 of 0.8712, with precision of 0.85.", "0.85, which is not what this sentence reports"),
    ("The F1 was 0.8712 and the F1 was 0.871 again on the set.", "2 numbers for the 1 it was given"),
])
def test_unusable_sentences_fall_back_with_a_warning(reply, problem):
    gen = ScriptedGenerator(lambda p: reply if "F1 of 0.8712" in p else f"Indeed, {claim(p)}.")
    text, warnings, stats = draft_results(FLAT, gen, sentence_tokens=100)
    assert len(warnings) == 1 and warnings[0].startswith("sentence 1: ") and problem in warnings[0]
    assert warnings[0].endswith("; replaced with the measured value")
    assert "The model reached an F1 of 0.8712 on the development set." in text and stats["fallbacks"] == 1


@pytest.mark.parametrize("reply", ["The results section states that the model reached an F1 of 0.8712.",
                                   '"The model reached an F1 of 0.8712."', "- the model reached an F1 of 0.8712.",
                                   "**The model reached an F1 of 0.8712.** It was good."])
def test_echoes_quotes_and_markup_are_stripped(reply):
    gen = ScriptedGenerator(lambda p: reply if "F1 of 0.8712" in p else f"Indeed, {claim(p)}.")
    text, warnings, _ = draft_results(FLAT, gen)
    assert warnings == [] and "\n\nThe model reached an F1 of 0.8712. Indeed," in text


def test_swapped_values_are_caught_by_their_count():
    reply = "Precision (0.8500) and recall (0.8930) were lower than precision (0.8930) and recall (0.8500)."
    gen = ScriptedGenerator(lambda p: reply if p.startswith("Precision") else f"Indeed, {claim(p)}.")
    _, warnings, _ = draft_results(FLAT, gen)
    assert warnings == ["sentence 2: model wrote 4 numbers for the 2 it was given; replaced with the measured value"]


def test_sentence_without_full_stop_gets_one():
    gen = ScriptedGenerator(lambda p: f"{claim(p)[0].upper()}{claim(p)[1:]}\nsecond line")
    text, warnings, _ = draft_results(FLAT, gen)
    assert warnings == [] and "The model reached an F1 of 0.8712 on the development set." in text


def test_garbage_writer_gives_the_template_paragraph():
    text, warnings, stats = draft_results(load_metrics(DATA / "metrics_run.json"), ScriptedGenerator(["%%% 12 ##"]))
    assert stats["fallbacks"] == stats["sentences"] == len(warnings) == 4
    assert text.endswith("The model reached an entity-level F1 of 0.8712 on the development set. "
                         "Precision (0.8534) was lower than recall (0.8897) on the development set. "
                         "The loss on the development set was 0.0581. "
                         "The best F1 on the development set during training was 0.8758, at step 686.")


def test_classifier_reports_accuracy_and_training_loss():
    data = {"task": "text-classification", "metrics": {"eval_accuracy": 0.9312, "eval_macro_f1": 0.9047, "loss": 0.15}}
    text, _, stats = draft_results(data, ScriptedGenerator(["x"]))
    assert text.endswith("The model reached a macro-F1 of 0.9047 on the development set. The accuracy on the "
                         "development set was 0.9312. The final training loss was 0.1500.") and stats["sentences"] == 3


def test_best_and_worst_entity_types():
    data = {"task": "ner", "final": {"eval_f1": 0.8},
            "per_type": {"Chemical": {"f1": 0.91, "support": 5385}, "Disease": {"f1": 0.79, "support": 4424}}}
    text, _, _ = draft_results(data, ScriptedGenerator(["x"]))
    assert "Chemical entities had the highest F1 (0.9100) and Disease entities the lowest (0.7900)." in text


@pytest.mark.parametrize("reply", ["It reached 0.88 after 4 epochs.", "F1 was 0.8712 in 2021 (up 5%).",
                                   "Scores: 0.8712, 0.85, 0.893, 0.31 and 0.1.", "Gains of 1,234 and -0.2 were seen."])
def test_invariant_every_number_in_the_paragraph_is_measured(reply):
    for data in (FLAT, load_metrics(DATA / "metrics_run.json"), load_metrics(DATA / "metrics_wrapped.json")):
        text, _, _ = draft_results(data, ScriptedGenerator([reply]))
        assert check_numbers(text, data) == []


def test_metrics_with_nothing_to_write_give_the_table_alone():
    text, warnings, stats = draft_results({"epoch": 3}, ScriptedGenerator(["x"]))
    assert text == "| Metric | Value |\n|---|---:|\n| Epochs | 3 |" and stats["sentences"] == 0
    assert warnings == ["no headline metric to write about; the section is the table alone"]


def test_digits_in_metric_names_never_reach_the_paragraph():
    text, _, _ = draft_results({"ndcg@10": 0.6451}, ScriptedGenerator(["ndcg 10 was 0.6451."]))
    assert check_numbers(text, {"ndcg@10": 0.6451}) == []


# --- With the real model (the integrator's `generator` fixture) -----------------------------------

@pytest.mark.slow
def test_results_with_real_model(generator):
    data = load_metrics(DATA / "metrics_run.json")
    updates: list[str] = []
    text, warnings, stats = draft_results(data, generator, on_update=updates.append)
    paragraph = text.rsplit("\n\n", 1)[-1]
    assert check_numbers(paragraph, data) == [] and check_numbers(text, data) == []
    assert text.startswith(results_table(data)) and updates[-1] == text
    assert any(matches_value(n, 0.8712) for n in numbers_in(paragraph))
    assert stats["sentences"] == 4 and stats["tokens"] > 0 and len(warnings) == stats["fallbacks"]
    assert all(re.fullmatch(r"sentence \d: .+; replaced with the measured value", w) for w in warnings)
