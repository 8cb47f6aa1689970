"""A small benchmark harness: fresh processes, interleaved repeats, medians, ratios.

Every variant runs in its own Python process (so compilation is part of what is
measured, as users experience it on a first run: numpyro_pgm's persistent
compilation cache is turned off in those processes), variants are interleaved
within each repeat (so a slow spell of the machine hits all of them alike), and
the table reports medians and ratios to a baseline measured in the same run.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["run_variants", "markdown_table", "write_section"]


def run_variants(
    script: Path,
    variants: Sequence[str],
    *,
    repeats: int,
    extra_args: Sequence[str] = (),
    pythons: Mapping[str, str] | None = None,
) -> dict[str, list[dict]]:
    """Run ``script --variant V`` for each variant, ``repeats`` times, interleaved.

    The script must print one JSON object on its last line of standard output.
    ``pythons`` maps a variant to the interpreter that runs it (a peer library's
    environment); the others run with this one.
    Each process starts without numpyro_pgm's persistent compilation cache
    (``NUMPYRO_PGM_CACHE_DIR=off``), so its compile times are a first run's.
    """
    environment = {**os.environ, "NUMPYRO_PGM_CACHE_DIR": "off"}
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    for repeat in range(repeats):
        for variant in variants:
            completed = subprocess.run(
                [
                    (pythons or {}).get(variant, sys.executable),
                    str(script),
                    "--variant",
                    variant,
                    *extra_args,
                ],
                check=True,
                capture_output=True,
                text=True,
                env=environment,
            )
            record = json.loads(completed.stdout.strip().splitlines()[-1])
            runs[variant].append(record)
            print(f"repeat {repeat + 1}/{repeats} {variant}: {record}", file=sys.stderr)
    return runs


def medians(runs: Mapping[str, list[dict]]) -> dict[str, dict[str, float]]:
    """Median of every numeric field per variant."""
    return {
        variant: {
            key: statistics.median(r[key] for r in records)
            for key in records[0]
            if isinstance(records[0][key], int | float)
        }
        for variant, records in runs.items()
    }


def markdown_table(
    rows: Mapping[str, Mapping[str, float]],
    columns: Sequence[tuple[str, str, str]],
    *,
    baseline: str,
    ratio_of: Sequence[str] = (),
) -> str:
    """Format a Markdown table: one row per variant, with ratios to ``baseline``.

    ``columns`` holds ``(field, header, format)``; each field in ``ratio_of`` gets a
    second column with its ratio to the baseline's median.
    """
    headers = ["variant"]
    for field, header, _ in columns:
        headers.append(header)
        if field in ratio_of:
            headers.append(f"{header} / {baseline}")
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for variant, values in rows.items():
        cells = [variant]
        for field, _, fmt in columns:
            cells.append(format(values[field], fmt))
            if field in ratio_of:
                cells.append(f"{values[field] / rows[baseline][field]:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_section(path: Path, title: str, body: str) -> None:
    """Replace (or append) the section ``## title`` of a Markdown file."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    marker = f"## {title}"
    section = f"{marker}\n\n{body.strip()}\n"
    if marker in text:
        start = text.index(marker)
        end = text.find("\n## ", start + len(marker))
        text = text[:start] + section + ("" if end == -1 else "\n" + text[end + 1 :])
    else:
        text = text.rstrip() + "\n\n" + section
    path.write_text(text)
