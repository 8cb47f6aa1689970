"""The ``summary.md`` of the Gaussian mixture case study (:mod:`gmm_old_faithful`).

One page per data set: the data and the model, a table with per method the
(relabelled) posterior means, the run time, the minimum ESS and ESS per second of
the samplers and the adjusted Rand index against the species, the choice of
:math:`K`, the raw-label convergence checks, the figures and a link to the project's
standard diagnostics report.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["summary_markdown"]


def _fmt(values) -> str:
    return "[" + ", ".join(f"{v:.3f}" for v in np.ravel(values)) + "]"


def _markdown_table(table) -> list[str]:
    columns = [table.index.name, *table.columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for index, row in table.iterrows():
        cells = [str(index)]
        for value in row:
            is_float = isinstance(value, float | np.floating)
            cells.append(f"{value:.2f}" if is_float else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def summary_markdown(
    entry: Mapping[str, Any],
    metrics: Mapping[str, dict],
    *,
    model_kwargs: Mapping[str, Any],
    figures: Sequence[str],
    diagnostics: str | None,
) -> str:
    """Return the markdown summary of one data set's fits."""
    data = entry["data"]
    dataset = data["dataset"]
    lines = [
        f"# Gaussian mixture: {data['name']}",
        "",
        f"Data: {data['x'].shape[0]} points, features {data['feature_names']} "
        f"(standardised). Licence: {dataset.license}. Citation: {dataset.citation}",
        f"Model: gmm.model with K = {entry['num_components']}, {dict(model_kwargs)}.",
        "",
        "## Methods (components relabelled to the EM solution)",
        "",
        "| method | pi | mu (standardised, row-major) | max gap to NUTS (sds) | "
        "run time (s) | min ESS | ESS/s | relabelled R-hat | ARI |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    nuts = metrics.get("nuts")
    for method, row in metrics.items():
        gap = np.nan
        if nuts is not None:
            gap = float(np.max(np.abs(row["mu"] - nuts["mu"]) / nuts["mu_sd"]))
        lines.append(
            f"| {method} | {_fmt(row['pi'])} | {_fmt(row['mu'])} | {gap:.2f} | "
            f"{row['time']:.1f} | {row['ess']:.0f} | {row['ess_per_second']:.1f} | "
            f"{row.get('rhat', np.nan):.3f} | {row['ari']:.3f} |"
        )
    lines += [
        "",
        "Gap: the largest |mean - NUTS mean| over the components' coordinates, in "
        "NUTS posterior sds. Run times include compilation (the first fit of a "
        "program compiles it) and depend on the load of the machine. "
        "ESS: the smallest bulk ESS over the relabelled pi and mu; ESS/s divides it "
        "by the run time. ARI: adjusted Rand index of the MAP assignment (mean "
        "responsibilities) against the species (penguins only). EM is maximum "
        "likelihood; the others estimate the posterior mean.",
        "",
    ]
    selection = entry["selection"]
    if selection is not None:
        lines += [
            "## Choosing K",
            "",
            *_markdown_table(selection.table),
            "",
            f"PSIS-LOO prefers K = {selection.best_loo}; the corrected Laplace "
            f"evidence prefers K = {selection.best_evidence}. The Laplace evidence of "
            "one mode is corrected by log K! for the K! equivalent labellings; the "
            "correction overcounts when components overlap (too large a K).",
            "",
            *[f"- {note}" for note in selection.notes],
            "",
        ]
    lines += ["## Convergence checks (raw labels, as the sampler produced them)", ""]
    for method, row in metrics.items():
        if "report" in row:
            lines += [f"### {method}", "", row["report"].to_markdown(), ""]
    lines += ["## Figures", "", *[f"- `{name}`" for name in figures], ""]
    if diagnostics is not None:
        lines += [
            "## Diagnostics",
            "",
            "The project's standard report of the sampled and variational fits "
            "(trace, rank, ESS and ELBO figures per method, summary statistics, "
            "checks and the comparison with NUTS), on pi and mu relabelled as "
            f"above: [{diagnostics}]({diagnostics}).",
            "",
        ]
    return "\n".join(lines)
