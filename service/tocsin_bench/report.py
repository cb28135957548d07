"""Figures and how they are shown: percentiles, the results table, the method."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Row:
    """One measured figure of one scenario, with the target it is held to (if any).

    A `correctness` row is a claim the bench itself stands behind (nothing lost,
    duplicated or reordered; no errors): failing one fails the run, whatever the scale.
    """

    scenario: str
    measure: str
    value: str
    target: str = ""
    met: bool | None = None
    correctness: bool = False


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of already sorted values (NaN for none)."""
    if not sorted_values:
        return math.nan
    rank = max(math.ceil(fraction * len(sorted_values)), 1)
    return sorted_values[rank - 1]


def ms(value_ns: float) -> str:
    """Nanoseconds shown as milliseconds."""
    return "n/a" if math.isnan(value_ns) else f"{value_ns / 1e6:.1f} ms"


def kib(value: float) -> str:
    """Bytes shown as KiB."""
    return f"{value / 1024:.1f} KiB"


def mib(value: float) -> str:
    """Bytes shown as MiB."""
    return f"{value / 1024 / 1024:.0f} MiB"


def table(rows: Sequence[Row]) -> str:
    """The rows as a plain-text table (also valid Markdown)."""
    header = ("scenario", "measure", "value", "target", "")
    body = [
        (r.scenario, r.measure, r.value, r.target, {True: "ok", False: "MISSED", None: ""}[r.met])
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), rule, *(line(b) for b in body)])


def progress(scenario: str, message: str) -> None:
    """One line of progress on stderr."""
    print(f"[{scenario}] {message}", file=sys.stderr, flush=True)
