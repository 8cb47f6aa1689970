"""Convergence diagnostics of the MovieLens case study (:mod:`mf_movielens`).

The split R-hat of the Gibbs expected ratings, and the project's standard report
(:func:`numpyro_pgm.report`) of the Gibbs and SVI fits, restricted to the three
precisions, with the R-hat of the product of the user and item precisions.
"""

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpyro.diagnostics import split_gelman_rubin

import numpyro_pgm as pgm

__all__ = ["REPORT_SITES", "diagnostics", "gibbs_rhat"]

# The sites of the standard report: the three precisions (the factors and biases
# are hundreds of sites, and the factors are identified only up to rotation).
REPORT_SITES = ["user_precision", "item_precision", "obs_precision"]


def gibbs_rhat(result: pgm.InferenceResult, test: Mapping[str, np.ndarray]) -> float:
    """Largest split R-hat of the expected rating over (up to) 500 test pairs."""
    pairs = np.linspace(0, test["user"].size - 1, min(500, test["user"].size))
    pairs = pairs.astype(int)
    user, item = test["user"][pairs], test["item"][pairs]
    samples = result.samples
    loc = np.einsum(
        "cdkn,cdkn->cdn",
        samples["user_factors"][..., user],
        samples["item_factors"][..., item],
    )
    loc += samples["user_bias"][..., user] + samples["item_bias"][..., item]
    return float(np.max(split_gelman_rubin(loc)))


def diagnostics(fits: Mapping[str, Any], out_dir: Path) -> list[str]:
    """Write the project's standard report of the Gibbs and SVI fits; link it."""
    # Without the pointwise log-likelihood: the held-out ratings are scored
    # above, and a Pareto k-hat plot of one point per training rating (10^4 to
    # 10^5) is unreadable.
    inference = {
        m: dataclasses.replace(
            fits[m],
            groups={k: v for k, v in fits[m].groups.items() if k != "log_likelihood"},
        )
        for m in ("gibbs", "svi")
        if m in fits
    }
    if not inference:
        return []
    path = pgm.report(
        inference,
        out_dir / "diagnostics",
        title="Bayesian matrix factorisation of MovieLens: diagnostics",
        var_names=REPORT_SITES,
    )
    link = path.relative_to(out_dir)
    lines = [
        "## Diagnostics",
        "",
        "The standard report of the Gibbs and SVI fits (CAVI returns its own "
        "result type, with the ELBO per sweep above): checks, traces, ranks, ELBO "
        f"and the comparison of the precisions {', '.join(REPORT_SITES)} (the "
        "pointwise log-likelihood is left out, so no LOO plots): "
        f"[{link}]({link}).",
        "",
    ]
    if "gibbs" in fits:
        samples = fits["gibbs"].samples
        rhat = {
            name: float(split_gelman_rubin(np.asarray(value)))
            for name, value in (
                ("user", samples["user_precision"]),
                ("item", samples["item_precision"]),
                ("product", samples["user_precision"] * samples["item_precision"]),
            )
        }
        lines += [
            "Scaling every user factor by c and every item factor by 1 / c leaves "
            "the ratings unchanged, so the data pin down the product of the user "
            "and item precisions far better than either: split R-hat (Gibbs) "
            f"{rhat['user']:.2f} for the user precision, {rhat['item']:.2f} for "
            f"the item precision, {rhat['product']:.2f} for their product. The "
            "chains drift slowly along that ridge; the predictions do not depend "
            "on where they are on it (see the R-hat of the expected rating above).",
            "",
        ]
    return lines
