r"""Case study: Gaussian mixtures on Old Faithful and the Palmer penguins.

Two classic clustering data sets, fitted with the hierarchical Gaussian mixture of
:mod:`numpyro_pgm.models.gmm` (seed ``003_02afaf35b30b64a9.txt``, Example 3.1) with a
per-component precision :math:`\Lambda_k \sim \mathrm{Wishart}` (the clusters are
not spherical: Old Faithful's two are elongated and tilted, the penguins' body mass
and flipper length are strongly correlated within species):

.. math::

    \pi \sim \mathrm{Dirichlet}(1), \quad \mu_k \sim \mathcal N(0, 2^2 I), \quad
    \Lambda_k \sim \mathrm{Wishart}(d + 2, ((d + 2)\, 0.5^2)^{-1} I), \quad
    z_n \sim \mathrm{Categorical}(\pi), \quad
    x_n \sim \mathcal N(\mu_{z_n}, \Lambda_{z_n}^{-1}),

on standardised columns. ``old_faithful`` (272 eruptions: duration and waiting
time, :math:`K = 2`) and ``penguins`` (342 birds: bill length and depth, flipper
length, body mass, :math:`K = 3`, the species as the truth). Methods:

* ``nuts``: NUTS with the assignments summed out (seed eq. (2.10)); the
  responsibilities (eq. (2.12)) are recomputed per draw;
* ``gibbs``: the conjugate full conditionals of
  :mod:`numpyro_pgm.models.gmm_gibbs` through ``fit(method="gibbs")``;
* ``cavi``: coordinate ascent VI with the mean-field family of Example 3.5 and a
  Wishart factor per precision (:mod:`numpyro_pgm.models.gmm_cavi`);
* ``svi-meanfield`` (the hand-written mean-field guide: Dirichlet and Normal
  factors) and ``svi-autonormal`` (``AutoNormal``: a diagonal Normal on the
  unconstrained space, for comparison; ``AutoMultivariateNormal`` fails on the
  enumerated model in this version of the core);
* ``em``: maximum likelihood by EM with full covariances (seed §2.3, with the
  covariance floor of Remark 2.10).

Labels are arbitrary (seed §2.2: :math:`K!` equivalent solutions), so every
method's components are aligned to the EM solution with
:func:`numpyro_pgm.models.gmm_labels.relabel` before anything is compared. The
number of components is chosen with :mod:`numpyro_pgm.models.gmm_selection`:
PSIS-LOO of the marginal likelihood and the Laplace evidence corrected by
:math:`\log K!`.

Results (seed 0, 4 chains of 500 draws after 500 warmup, 3000 SVI steps). Old
Faithful, :math:`K = 2`: all six methods put the component means within 0.11
posterior sds of NUTS (Gibbs 0.05, CAVI 0.02, EM 0.06, mean-field SVI 0.11,
AutoNormal 0.05); the tests bound these gaps by Monte Carlo error plus
:math:`\mathrm{sd}/\sqrt{N_k}`. PSIS-LOO rises from :math:`K = 1` (elpd -549.5)
to :math:`K = 2` (-396.9) and then only by 4.5 +- 3.2 for :math:`K = 3, 4`; the
:math:`\log K!`-corrected Laplace evidence is highest at :math:`K = 2` (-421.5
against -422.6 for :math:`K = 3`: posterior probabilities 0.75 and 0.25).
Penguins, :math:`K = 3`: NUTS, Gibbs, CAVI and SVI recover the species with an
adjusted Rand index of 0.953; maximum-likelihood EM gets 0.909, because without
the Wishart prior it gives the Chinstrap component a smaller weight (0.16 against
0.20) and a tighter covariance.

Outputs in ``--out-dir/<data>/``: ``clusters.png`` (data, MAP clusters, posterior
ellipses with draws showing their uncertainty), ``responsibilities.png``,
``trace.png`` (trace and rank plots of the relabelled means), ``objectives.png``
(ELBO and log-likelihood curves), ``methods.png`` (component means per method),
``k_selection.png``, ``summary.md`` (per method the posterior means, run time,
ESS per second of the samplers and, for the penguins, the adjusted Rand index) and
``diagnostics/`` (the project's standard report, :func:`numpyro_pgm.report`, of the
NUTS, Gibbs and SVI fits, relabelled). The figures are drawn by the private
sibling modules ``_gmm_figures`` and ``_gmm_summary``. ``--quick`` runs tiny
settings (a smoke run; most of its time is compilation).

References
----------
.. [1] F. Tobar, *Probabilistic Generative Models*, lecture notes (2026), seed
   ``003_02afaf35b30b64a9.txt``: chapter 2 (EM, Remark 2.10), Examples 3.1, 3.5
   and 3.7.
.. [2] A. Azzalini and A. W. Bowman, "A look at some data on the Old Faithful
   geyser", Applied Statistics 39 (1990).
.. [3] K. B. Gorman, T. D. Williams and W. R. Fraser, "Ecological sexual
   dimorphism and environmental variability within a community of Antarctic
   penguins (genus Pygoscelis)", PLoS ONE 9 (2014).
.. [4] L. Hubert and P. Arabie, "Comparing partitions", Journal of Classification
   2 (1985): the adjusted Rand index.
"""

import argparse
import dataclasses
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import jax  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from arviz_stats.base import array_stats  # noqa: E402
from numpyro_pgm.case_studies import _gmm_figures as figs  # noqa: E402
from numpyro_pgm.case_studies._gmm_summary import (  # noqa: E402
    summary_markdown as summarise,
)
from numpyro_pgm.case_studies._outputs import fit_and_report  # noqa: E402
from numpyro_pgm.models import (  # noqa: E402
    gmm,
    gmm_cavi,
    gmm_em,
    gmm_gibbs,
    gmm_labels,
    gmm_selection,
)

import numpyro_pgm as pgm  # noqa: E402
from numpyro_pgm import datasets  # noqa: E402

DATA = ("old_faithful", "penguins")
METHODS = ("nuts", "gibbs", "cavi", "svi-meanfield", "svi-autonormal", "em")
MCMC = ("nuts", "gibbs")
NUM_COMPONENTS = {"old_faithful": 2, "penguins": 3}
MODEL_KWARGS = {
    "learn_covariance": True,
    "covariance_prior": "wishart",
    "prior_scale": 2.0,
    "obs_scale_prior": 0.5,
    "concentration": 1.0,
}
QUICK = {
    "num_warmup": 60,
    "num_samples": 60,
    "num_chains": 2,
    "num_steps": 300,
    "candidates": (1, 2),
}


# ----------------------------------------------------------------------------- data


def load_data(name: str = "old_faithful") -> dict[str, Any]:
    """Load a data set and standardise its columns."""
    dataset = datasets.load(name)
    raw = np.asarray(dataset.X, dtype=np.float64)
    mean, scale = raw.mean(0), raw.std(0)
    out = {
        "name": name,
        "x": (raw - mean) / scale,
        "raw": raw,
        "mean": mean,
        "scale": scale,
        "feature_names": tuple(dataset.feature_names),
        "dataset": dataset,
        "labels": None,
    }
    if name == "penguins":
        out["labels"] = np.asarray(dataset.y)
        out["label_names"] = tuple(dataset.target_names)
    return out


# ------------------------------------------------------------------------------ fit


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    settings = {
        "num_warmup": args.num_warmup,
        "num_samples": args.num_samples,
        "num_chains": args.num_chains,
        "num_steps": args.num_steps,
        "candidates": tuple(range(1, args.max_components + 1)),
    }
    if args.quick:
        settings.update(QUICK)
    return settings


def _fit_method(method, rng_key, data, model_data, settings) -> dict[str, Any]:
    """Run one method; return its draws (chain, draw, ...) or point estimate."""
    x, num_components = data["x"], model_data["num_components"]
    start = time.perf_counter()
    mcmc = {
        "num_warmup": settings["num_warmup"],
        "num_samples": settings["num_samples"],
        "num_chains": settings["num_chains"],
        "progress_bar": False,
    }
    common = {"data": model_data, "checks": False}  # checks go to summary.md
    if method in MCMC:
        if method == "gibbs":
            mcmc["conditionals"] = gmm_gibbs.gibbs_conditionals(**model_data)
        result = pgm.fit(rng_key, gmm.model, method=method, **mcmc, **common)
    elif method.startswith("svi"):
        guide = gmm.mean_field_guide if method == "svi-meanfield" else "normal"
        result = pgm.fit(
            rng_key,
            gmm.model,
            method="svi",
            guide=guide,
            num_steps=settings["num_steps"],
            num_samples=settings["num_samples"] * settings["num_chains"],
            # Decaying steps: the final iterate settles at the optimum instead of
            # jittering around it (Adam with a constant step of 0.02 does).
            optimizer=optax.adam(
                optax.cosine_decay_schedule(0.02, settings["num_steps"], alpha=0.005)
            ),
            stop_on_plateau=False,
            progress_bar=False,
            **common,
        )
    elif method == "cavi":
        fit = gmm_cavi.cavi(
            rng_key, x, num_components=num_components, **MODEL_KWARGS
        )  # fmt: skip
        return {
            "pi": np.asarray(fit.pi_concentration / fit.pi_concentration.sum()),
            "mu": np.asarray(fit.mu_mean),
            "cov": np.linalg.inv(np.asarray(fit.expected_precision())),
            "mu_sd": np.sqrt(np.diagonal(np.asarray(fit.mu_cov), 0, -2, -1)),
            "curve": np.asarray(fit.elbo),
            "time": time.perf_counter() - start,
        }
    else:
        fit = gmm_em.em(rng_key, x, num_components=num_components)
        return {
            "pi": np.asarray(fit.params.weights),
            "mu": np.asarray(fit.params.means),
            "cov": np.asarray(fit.params.covs),
            "curve": np.asarray(fit.log_likelihood),
            "time": time.perf_counter() - start,
        }
    draws = {
        "pi": np.asarray(result.samples["pi"], dtype=np.float64),
        "mu": np.asarray(result.samples["mu"], dtype=np.float64),
        "cov": np.linalg.inv(np.asarray(result.samples["obs_precision"], np.float64)),
        "time": result.timings["total"],
        "result": result,
    }
    if "elbo" in result.sample_stats:
        draws["curve"] = np.asarray(result.sample_stats["elbo"])[0]
    return draws


def fit(args: argparse.Namespace) -> dict[str, Any]:
    settings = _settings(args)
    results = {"settings": settings, "seed": args.seed, "data": {}}
    for index, name in enumerate(args.data):
        data = load_data(name)
        num_components = args.num_components or NUM_COMPONENTS[name]
        model_data = {"x": data["x"], "num_components": num_components}
        model_data.update(MODEL_KWARGS)
        key = jax.random.fold_in(jax.random.key(args.seed), index)
        fits = {}
        for method in args.method:
            method_key = jax.random.fold_in(key, METHODS.index(method))
            fits[method] = _fit_method(method, method_key, data, model_data, settings)
        selection = None
        if not args.skip_selection:
            selection = gmm_selection.select_num_components(
                jax.random.fold_in(key, 99),
                data["x"],
                num_components=settings["candidates"],
                nuts_options={
                    k: settings[k] for k in ("num_warmup", "num_samples", "num_chains")
                },
                **MODEL_KWARGS,
            )
        results["data"][name] = {
            "data": data,
            "num_components": num_components,
            "fits": fits,
            "selection": selection,
        }
    return results


# ------------------------------------------------------------------------- metrics


def adjusted_rand_index(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Return the adjusted Rand index of two partitions (Hubert and Arabie, 1985)."""
    _, labels = np.unique(labels, return_inverse=True)
    _, clusters = np.unique(clusters, return_inverse=True)
    table = np.zeros((labels.max() + 1, clusters.max() + 1))
    np.add.at(table, (labels, clusters), 1)

    def pairs(counts):
        return float(np.sum(counts * (counts - 1) / 2))

    index = pairs(table)
    rows, columns, total = (
        pairs(table.sum(1)),
        pairs(table.sum(0)),
        pairs(np.array([table.sum()])),
    )
    expected = rows * columns / total
    return (index - expected) / (0.5 * (rows + columns) - expected)


def _align(fits: Mapping[str, dict]) -> np.ndarray:
    """Relabel every method to a common reference (EM, else the first method)."""
    reference_fit = fits.get("em") or next(iter(fits.values()))
    reference = np.asarray(reference_fit["mu"])
    if reference.ndim > 2:  # draws: relabel them among themselves first
        reference = gmm_labels.relabel(reference).reference
    reference = reference[np.argsort(reference[:, 0])]
    for values in fits.values():
        relabelling = gmm_labels.relabel(values["mu"], reference=reference)
        permutations = relabelling.permutations
        values["permutations"] = permutations
        values["mu"] = relabelling.mu
        values["pi"] = gmm_labels.apply_permutations(values["pi"], permutations)
        values["cov"] = gmm_labels.apply_permutations(
            values["cov"], permutations, axis=-3
        )
        if "mu_sd" in values:
            values["mu_sd"] = gmm_labels.apply_permutations(
                values["mu_sd"], permutations, axis=-2
            )
    return reference


def _is_draws(values: Mapping[str, Any]) -> bool:
    return "result" in values


def _responsibilities(values: Mapping[str, Any], x: np.ndarray) -> np.ndarray:
    """Mean responsibilities (num_points, K): over draws, or at the point estimate."""
    if _is_draws(values):
        num_draws = values["mu"].shape[0] * values["mu"].shape[1]
        thin = max(1, num_draws // 400)
        pi = values["pi"].reshape(-1, values["pi"].shape[-1])[::thin]
        mu = values["mu"].reshape(-1, *values["mu"].shape[-2:])[::thin]
        cov = values["cov"].reshape(-1, *values["cov"].shape[-3:])[::thin]
        return np.asarray(gmm.responsibilities(x, pi, mu, obs_cov=cov)).mean(0)
    return np.asarray(
        gmm.responsibilities(x, values["pi"], values["mu"], obs_cov=values["cov"])
    )


def _ess_per_second(values: Mapping[str, Any]) -> tuple[float, float]:
    """Smallest bulk ESS over the relabelled pi and mu, and that per second."""
    if not _is_draws(values) or values["result"].method not in MCMC:
        return np.nan, np.nan
    flat = np.concatenate(
        [
            values["pi"].reshape(*values["pi"].shape[:2], -1),
            values["mu"].reshape(*values["mu"].shape[:2], -1),
        ],
        axis=-1,
    )
    ess = float(np.min(array_stats.ess(flat, chain_axis=0, draw_axis=1)))
    return ess, ess / values["time"]


def _metrics(entry: Mapping[str, Any]) -> dict[str, dict]:
    data, fits = entry["data"], entry["fits"]
    metrics = {}
    for method, values in fits.items():
        resp = _responsibilities(values, data["x"])
        ess, ess_per_second = _ess_per_second(values)
        mu = values["mu"] if values["mu"].ndim == 2 else values["mu"].mean((0, 1))
        pi = values["pi"] if values["pi"].ndim == 1 else values["pi"].mean((0, 1))
        if _is_draws(values):
            mu_sd = values["mu"].std((0, 1))
        else:
            mu_sd = values.get("mu_sd", np.full_like(mu, np.nan))
        row = {
            "pi": pi,
            "mu": mu,
            "mu_sd": mu_sd,
            "time": values["time"],
            "ess": ess,
            "ess_per_second": ess_per_second,
            "responsibilities": resp,
            "assignment": resp.argmax(-1),
            "ari": np.nan,
        }
        if data["labels"] is not None:
            row["ari"] = adjusted_rand_index(data["labels"], row["assignment"])
        if _is_draws(values):
            row["report"] = pgm.check(values["result"])
        metrics[method] = row
    return metrics


def _rhat_relabelled(values: Mapping[str, Any]) -> float:
    if not _is_draws(values) or values["result"].method not in MCMC:
        return np.nan
    flat = values["mu"].reshape(*values["mu"].shape[:2], -1)
    return float(np.max(array_stats.rhat(flat, chain_axis=0, draw_axis=1)))


# -------------------------------------------------------------------------- report


def _relabelled_result(values: Mapping[str, Any]) -> pgm.InferenceResult:
    """Return the fit's ``InferenceResult`` with its component sites relabelled."""
    result, permutations = values["result"], values["permutations"]
    posterior = dict(result.samples)
    posterior["pi"], posterior["mu"] = values["pi"], values["mu"]
    if "obs_precision" in posterior:
        posterior["obs_precision"] = gmm_labels.apply_permutations(
            posterior["obs_precision"], permutations, axis=-3
        )
    if "z" in posterior:  # new label j is the old label permutations[j]
        inverse = np.argsort(permutations, axis=-1)
        posterior["z"] = np.take_along_axis(inverse, posterior["z"], axis=-1)
    return dataclasses.replace(result, groups={**result.groups, "posterior": posterior})


def report(results: Mapping[str, Any], out_dir: str | Path) -> dict[str, dict]:
    out_dir = Path(out_dir)
    all_metrics = {}
    for name, entry in results["data"].items():
        folder = out_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        _align(entry["fits"])
        metrics = _metrics(entry)
        for method, row in metrics.items():
            row["rhat"] = _rhat_relabelled(entry["fits"][method])
        fits = entry["fits"]
        reference = "nuts" if "nuts" in fits else next(iter(fits))
        figures = {
            "clusters.png": figs.plot_clusters(entry, metrics, reference),
            "responsibilities.png": figs.plot_responsibilities(entry, metrics),
            "methods.png": figs.plot_methods(entry, metrics),
        }
        if any(m in fits for m in MCMC):
            figures["trace.png"] = figs.plot_trace(entry)
        if any("curve" in values for values in fits.values()):
            figures["objectives.png"] = figs.plot_objectives(entry)
        if entry["selection"] is not None:
            figures["k_selection.png"] = figs.plot_selection(entry["selection"])
        for file_name, figure in figures.items():
            figure.savefig(folder / file_name, dpi=110)
            plt.close(figure)
        # The project's standard report of the InferenceResult fits (NUTS, Gibbs,
        # SVI): trace/rank/ESS/ELBO figures, check tables, summary statistics and
        # the comparison with NUTS, on the relabelled pi and mu.
        sampled = {m: _relabelled_result(v) for m, v in fits.items() if _is_draws(v)}
        diagnostics = None
        if sampled:
            path = pgm.report(
                sampled,
                folder / "diagnostics",
                title=f"Gaussian mixture on {name} (K = {entry['num_components']}): "
                "diagnostics",
                var_names=["pi", "mu"],
            )
            diagnostics = str(path.relative_to(folder))
        summary = summarise(
            entry,
            metrics,
            model_kwargs=MODEL_KWARGS,
            figures=list(figures),
            diagnostics=diagnostics,
        )
        (folder / "summary.md").write_text(summary)
        all_metrics[name] = metrics
    return all_metrics


# ---------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Gaussian mixtures on Old Faithful and the penguins: NUTS, Gibbs, "
        "CAVI, SVI and EM compared; K chosen by PSIS-LOO and the Laplace evidence."
    )
    parser.add_argument("--data", nargs="+", choices=DATA, default=list(DATA))
    parser.add_argument(
        "--method", nargs="+", choices=METHODS, default=list(METHODS)
    )  # fmt: skip
    parser.add_argument(
        "--num-components", type=int, default=None,
        help="K for the method comparison (default: 2 for old_faithful, 3 for "
        "penguins)",
    )  # fmt: skip
    parser.add_argument("--max-components", type=int, default=6,
                        help="K selection compares 1..max")  # fmt: skip
    parser.add_argument("--skip-selection", action="store_true")
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--num-warmup", type=int, default=1000)
    parser.add_argument("--num-chains", type=int, default=4)
    parser.add_argument("--num-steps", type=int, default=5000, help="SVI steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default="results/gmm_old_faithful")
    parser.add_argument("--quick", action="store_true",
                        help=f"tiny settings for a smoke run: {QUICK}")  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, dict]:
    args = _parser().parse_args(argv)
    args.method = list(dict.fromkeys(args.method))
    args.data = list(dict.fromkeys(args.data))
    return fit_and_report(args, fit, report, written="summaries and figures")


if __name__ == "__main__":
    main()
