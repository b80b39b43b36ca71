"""Numbers in prose: finding them, formatting measured values, and matching one to the other.

The results section's rule is that every number in the text equals a measured value, at the
precision it is written. What `numbers_in` counts as a number:

- integers, decimals (".87" too), thousands separators ("5,424"), signs ("-0.5", "−0.5"),
  scientific notation ("1e-4", "5E-05") and percentages ("87.1%", "87.1 %", "87.1 percent");
- NOT digits inside a word or identifier: "F1", "SmolLM2-135M", "GPT-4", "COVID-19", "v1.1",
  "1.2.3", "2nd", "100k". A number glued to letters, or written right after a letter and a hyphen,
  is part of a name, not a quantity;
- NOT citation markers ("[3]", "[1, 2]", "[1-3]") and nothing inside `code spans` (metric names
  such as `ndcg@10` are shown that way);
- NOT number words ("three"): they cannot be checked, so a sentence that needs its number says it
  in digits (the results drafter requires the asked-for number to appear).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

_CITATION = re.compile(r"\[\s*\d+(?:\s*[,;–—-]\s*\d+)*\s*\]")
_CODE = re.compile(r"`[^`\n]*`")
_NUMBER = re.compile(r"""
    (?<![\w.])(?<![A-Za-z]-)            # not inside a word, a version string or a name like GPT-4
    (?P<sign>[-−+])?
    (?P<mantissa>\d{1,3}(?:,\d{3})+(?!\d)(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)
    (?P<exp>[eE][-−+]?\d+)?
    (?!\w|\.\d)                         # not followed by letters (135M, 2nd) or more of a version
    (?P<pct>\s?%|\s?per\s?cent\b)?
""", re.X)


@dataclass(frozen=True)
class Number:
    """A number as written: `value` is what the digits say (87.1 for "87.1%")."""

    text: str
    value: float
    decimals: int        # digits after the point in the mantissa
    exponent: int        # the power of ten of scientific notation, else 0
    percent: bool
    significant: int     # significant digits written ("0.50" has 2, "0.5" has 1)

    @property
    def is_integer(self) -> bool:
        """Written as a plain integer: no point, no exponent, no percent sign."""
        return self.decimals == 0 and self.exponent == 0 and not self.percent and "." not in self.text

    @property
    def step(self) -> float:
        """The place value of the last digit written (0.001 for "0.871", 1e-5 for "1.5e-4")."""
        return 10.0 ** (self.exponent - self.decimals)


def numbers_in(text: str) -> list[Number]:
    """Every number in `text`, in order (see the module docstring for what counts)."""
    text = _CODE.sub(" ", _CITATION.sub(" ", text or ""))
    return [_parse(m) for m in _NUMBER.finditer(text)]


def _parse(m: re.Match) -> Number:
    sign = "-" if m["sign"] in ("-", "−") else ""
    mantissa = m["mantissa"].replace(",", "")
    exponent = int(m["exp"][1:].replace("−", "-")) if m["exp"] else 0
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    digits = mantissa.replace(".", "").lstrip("0")
    return Number(text=m.group(0).strip(), value=float(f"{sign}{mantissa}e{exponent}"), decimals=decimals,
                  exponent=exponent, percent=bool(m["pct"]), significant=len(digits))


def matches_value(number: Number, value: float) -> bool:
    """Whether `number` states `value` at the precision it is written.

    "0.871", "0.87", "87.12%" and "87.1 %" state 0.8712; "0.88" does not. A plain integer must equal
    a whole value exactly (counts: epochs, steps, support). A number rounded to fewer than two
    significant digits ("0.9", "1e-4") matches only an exact value: so coarse a rounding would let
    almost any wrong number pass.
    """
    if isinstance(value, bool) or not math.isfinite(value):
        return False
    if number.is_integer:
        return float(value).is_integer() and number.value == value
    # A percentage states a fraction times 100; a metric already on a 0-100 scale is compared as is.
    target = value * 100 if number.percent and abs(value) <= 1 else value
    if abs(target - number.value) <= 1e-9 * max(1.0, abs(target)):
        return True
    if number.significant < 2:
        return False
    return abs(target - number.value) <= number.step / 2 * (1 + 1e-9) + 1e-12


def matches(number: Number | str | float, metrics) -> bool:
    """Whether `number` states one of the measured values.

    `metrics` is anything with a `pool()` of values (a results `Metrics`) or an iterable of numbers;
    `number` may be a `Number`, a string holding exactly one number ("87.1 %"), or a float/int
    (compared exactly as Python writes it).
    """
    parsed = _as_number(number)
    pool: Iterable[float] = metrics.pool() if hasattr(metrics, "pool") else metrics
    return any(matches_value(parsed, v) for v in pool)


def _as_number(number: Number | str | float) -> Number:
    if isinstance(number, Number):
        return number
    found = numbers_in(number if isinstance(number, str) else repr(number))
    if len(found) != 1:
        raise ValueError(f"expected exactly one number in {number!r}, found {len(found)}")
    return found[0]


def number_problem(found: list[Number], required: Sequence[float], metrics, *, most: int) -> str | None:
    """What is wrong with the numbers of a sentence written to state `required`, or None.

    Each number must state a measured value (the section's rule) and one of `required` (a value
    from elsewhere in the metrics is a mix-up); none of `required` may be missing; and there may be
    at most `most` numbers (a value written twice, for two metrics, is a swap).
    """
    wrong = [n.text for n in found if not matches(n, metrics)]
    if wrong:
        return f"model wrote {_and(wrong)}, which {'is' if len(wrong) == 1 else 'are'} not in the metrics"
    stray = [n.text for n in found if not any(matches_value(n, v) for v in required)]
    if stray:
        return f"model wrote {_and(stray)}, which {'is' if len(stray) == 1 else 'are'} not what this sentence reports"
    missing = [v for v in required if not any(matches_value(n, v) for n in found)]
    if missing:
        return f"model did not state {_and([format_value(v) for v in missing])}"
    if len(found) > most:
        return f"model wrote {len(found)} numbers for the {most} it was given"
    return None


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def format_value(value: float, *, count: bool = False) -> str:
    """A measured value as the tables and sentences show it, so that it `matches_value` itself.

    Ints as ints; whole counts (epoch 3.0) as ints; fractions with 4 decimals ("0.8500"); tiny values
    in short scientific form ("5e-05"); larger values to about 4 significant digits ("12.35").
    """
    if isinstance(value, int):
        return str(value)
    if value.is_integer() and (count or abs(value) >= 1000):
        return str(int(value))
    if count:
        return f"{value:.2f}"
    magnitude = abs(value)
    if 0 < magnitude < 0.001:
        return f"{value:.3g}"
    if magnitude < 1:
        return f"{value:.4f}"
    return f"{value:.{3 if magnitude < 10 else 2}f}"
