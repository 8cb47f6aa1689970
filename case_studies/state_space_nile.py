r"""Case study: the flow of the Nile, 1871-1970, as a local level model.

The annual flow of the Nile at Aswan (100 values, :math:`10^8 m^3`) is the classic
series of Durbin and Koopman's book: a level that wanders slowly, with a drop near
1898 (the first Aswan dam), seen through large year-to-year noise. The local level
model (a random walk observed with noise), a linear-Gaussian case of the state-space
model of seed ``003_02afaf35b30b64a9.txt``, Example 3.3,

.. math::

    \mu_t = \mu_{t-1} + \eta_t, \quad \eta_t \sim \mathcal N(0, \sigma^2_\eta),
    \qquad y_t = \mu_t + \varepsilon_t, \quad
    \varepsilon_t \sim \mathcal N(0, \sigma^2_\varepsilon),

has a likelihood that the Kalman filter computes exactly, every step being the
Gaussian conditioning of seed ``000_7a39c8fab34c037d.txt``, section 5. This script

1. maximises that likelihood over the two variances (our own Kalman filter and
   scipy's L-BFGS on the log-variances, in float64, with the approximate-diffuse
   start :math:`\mu_1 \sim \mathcal N(0, 10^7)` and its first term dropped, as the
   exact-diffuse likelihood does) and compares the estimates with the published
   values (Durbin & Koopman 2012, section 2.10: :math:`\hat\sigma^2_\varepsilon =
   15099`, :math:`\hat\sigma^2_\eta = 1469.1`) and, when statsmodels is installed,
   with its ``UnobservedComponents`` fit;
2. samples the Bayesian posterior by NUTS on the model with the level integrated
   out by the Kalman filter (:func:`numpyro_pgm.models.state_space.local_level_model`),
   with priors scaled to the data: half-normal priors on :math:`\sigma_\eta` and
   :math:`\sigma_\varepsilon` of scale :math:`s_y` (the sample sd, 169), so each sd
   is below :math:`2 s_y` with prior probability 0.95, and
   :math:`\mu_1 \sim \mathcal N(\bar y, (10 s_y)^2)`;
3. draws the level path once per posterior draw by forward-filtering
   backward-sampling (FFBS), so the bands of the smoothed level carry the
   uncertainty about the variances too; and the same for a 10-year forecast
   (1971-1980), whose predictive intervals mix the Kalman predictive over the
   posterior draws;
4. optionally (``--method nuts latent-nuts``, the default without ``--quick``)
   samples the same posterior with the 100 levels as explicit, non-centred latent
   variables and compares the two. Both target the same posterior (the models'
   log densities differ by exactly :math:`\log p(\mu_{1:T} \mid y, \theta)`),
   but the latent one is a 102-dimensional funnel: the innovations' posterior
   width depends on the two scales (where :math:`\sigma_\eta` is large and
   :math:`\sigma_\varepsilon` small the data pin every innovation to a narrow
   range; where :math:`\sigma_\eta` is small they fall back to their prior), and
   one step size cannot serve both ends. NUTS on it needs a higher target
   acceptance (0.95; tens of divergences at the default 0.8) and a start at the
   prior median (every innovation zero: a flat level at the prior mean; from
   NumPyro's default uniform(-2, 2) start one chain in four of the slow test's
   run stalled in warm-up at :math:`\sigma_\varepsilon \approx 0`, split R-hat
   2.8); even so it is one to two orders of magnitude slower per effective draw
   (``benchmarks/results/state_space.md``) and diverges, at large
   :math:`\sigma_\eta`, 8 to 83 times in 4,000 draws over the five seeds we ran
   (56 for this script's seed 0; 5 and 7 from the default start on the two seeds
   where it did not stall; the checks and the pair plot in ``diagnostics/`` show
   them). Measured on seed 31 (4 x 1,000 draws), a dense
   mass matrix did not remove the divergences (7 vs 8) and a centred
   parameterisation, free of divergences at 0.8, mixed worse (ESS of
   :math:`\sigma^2_\eta` 209 vs 688) and stalled chains (at 0.95; with a dense
   mass matrix even from the prior median). Marginalising the states by the
   Kalman filter removes the funnel altogether.

Figures (``level.png``, ``forecast.png``, ``variances.png``, ``methods.png``, drawn
by :mod:`numpyro_pgm.case_studies._nile_figures`) and ``summary.md`` go to
``--out-dir``, the project's standard report of the fits (:func:`numpyro_pgm.report`:
trace, rank and ESS figures, summary statistics, the samplers compared) to its
``diagnostics`` folder. ``--quick`` runs NUTS with tiny settings (a
smoke run of well under a minute).

References
----------
.. [1] J. Durbin and S. J. Koopman, *Time Series Analysis by State Space Methods*,
   2nd ed., Oxford University Press (2012), sections 2.2-2.10.
.. [2] G. W. Cobb, "The problem of the Nile: conditional solution to a changepoint
   problem", Biometrika 65(2), 243-251 (1978).
.. [3] S. Frühwirth-Schnatter, "Data augmentation and dynamic linear models",
   Journal of Time Series Analysis 15(2), 183-202 (1994).
.. [4] F. Tobar, *Probabilistic Generative Models*, lecture notes (2026), seed
   ``003_02afaf35b30b64a9.txt``, Example 3.3.
"""

import argparse
import functools
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import scipy.optimize  # noqa: E402
from numpyro.diagnostics import effective_sample_size  # noqa: E402
from numpyro.infer import init_to_median  # noqa: E402
from numpyro_pgm.case_studies import _nile_figures as figs  # noqa: E402
from numpyro_pgm.case_studies._outputs import (  # noqa: E402
    diagnostics_section,
    fit_and_report,
    save_figures,
)
from numpyro_pgm.models import state_space as ss  # noqa: E402

import numpyro_pgm as pgm  # noqa: E402
from numpyro_pgm import datasets  # noqa: E402

METHODS = ("nuts", "latent-nuts")
PUBLISHED = {"observation_variance": 15099.0, "level_variance": 1469.1}
HORIZON = 10
DIFFUSE_VARIANCE = 1e7
QUICK = {"num_warmup": 150, "num_samples": 150, "num_chains": 2}
SCALES = ("level_scale", "observation_scale")  # the sampled parameters


# ----------------------------------------------------------------------------- data


def load_data() -> dict[str, Any]:
    """Load the Nile series with its years and the data-scaled prior settings."""
    dataset = datasets.load("nile")
    y = np.asarray(dataset.y, dtype=np.float64)
    return {"year": dataset.year, "y": y, "dataset": dataset, "prior": prior(y)}


def prior(y: np.ndarray) -> dict[str, float]:
    """Half-normal scales s_y for both sds; the first level ~ N(mean y, (10 s_y)^2)."""
    scale = float(np.std(y))
    return {
        "level_prior_scale": scale,
        "observation_prior_scale": scale,
        "initial_mean": float(np.mean(y)),
        "initial_variance": (10 * scale) ** 2,
    }


# ------------------------------------------------------------ maximum likelihood


def maximum_likelihood(y: np.ndarray) -> dict[str, Any]:
    """Kalman MLE of the two variances (float64, approximate-diffuse start).

    The first observation's term, nearly flat under the :math:`10^7` prior
    variance, is dropped: the remaining sum is the exact-diffuse log-likelihood up
    to :math:`O(10^{-7})`. Standard errors of the log-variances come from the
    Hessian of the negative log-likelihood (by JAX) at the optimum.
    """
    with jax.enable_x64(True):
        data = jnp.asarray(y, dtype=jnp.float64)

        def negative_log_likelihood(log_variances):
            variances = jnp.exp(log_variances)
            structure = ss.local_level(
                variances[0], variances[1], initial_variance=DIFFUSE_VARIANCE
            )
            return -ss.kalman_filter(structure, data).log_likelihood_terms[1:].sum()

        objective = jax.jit(jax.value_and_grad(negative_log_likelihood))
        start = np.log([np.var(y) / 2, np.var(y) / 2])
        fit = scipy.optimize.minimize(objective, start, jac=True, method="L-BFGS-B")
        hessian = np.asarray(jax.hessian(negative_log_likelihood)(jnp.asarray(fit.x)))
        level_variance, observation_variance = np.exp(fit.x)
        best = ss.local_level(
            level_variance, observation_variance, initial_variance=DIFFUSE_VARIANCE
        )
        smoothed = ss.rts_smoother(best, data)
        predicted = ss.forecast(best, data, HORIZON)
        return {
            "level_variance": float(level_variance),
            "observation_variance": float(observation_variance),
            "log_variance_se": np.sqrt(np.diag(np.linalg.inv(hessian))),
            "log_likelihood": float(-fit.fun),
            "converged": bool(fit.success),
            "smoothed_mean": np.asarray(smoothed.smoothed_means[:, 0]),
            "smoothed_sd": np.sqrt(np.asarray(smoothed.smoothed_covs[:, 0, 0])),
            "forecast_mean": np.asarray(predicted.observation_means[:, 0]),
            "forecast_sd": np.sqrt(np.asarray(predicted.observation_covs[:, 0, 0])),
        }


def statsmodels_reference(y: np.ndarray) -> dict[str, float] | None:
    """Fit statsmodels' UnobservedComponents MLE; ``None`` if it is not installed.

    statsmodels is an optional dependency (the ``examples`` extra); only this
    comparison uses it.
    """
    try:
        from statsmodels.tsa.statespace.structural import UnobservedComponents
    except ImportError:
        return None
    fit = UnobservedComponents(y, level="llevel").fit(disp=False)
    observation_variance, level_variance = fit.params
    return {
        "level_variance": float(level_variance),
        "observation_variance": float(observation_variance),
        "log_likelihood": float(fit.llf),
    }


# ------------------------------------------------------------------------ posterior


def _settings(args: argparse.Namespace) -> dict[str, int]:
    settings = {
        "num_warmup": args.num_warmup,
        "num_samples": args.num_samples,
        "num_chains": args.num_chains,
    }
    if args.quick:
        settings.update(QUICK)
    return settings


def _fit_posterior(
    method: str, rng_key: jax.Array, data: Mapping[str, Any], settings: Mapping
) -> pgm.InferenceResult:
    options = {"method": "nuts", "progress_bar": False, "checks": False, **settings}
    if method == "nuts":
        model_data = {"y": data["y"], **data["prior"]}
        return pgm.fit(rng_key, ss.local_level_model, data=model_data, **options)
    structure = functools.partial(ss.local_level_prior, **data["prior"])
    model_data = {"y": data["y"], "ssm": structure}
    # The funnel diverges at the default 0.8 (tens of divergences), and from the
    # default uniform(-2, 2) start a chain can stall in warm-up (module docstring).
    options["target_accept_prob"] = 0.95
    options["init_strategy"] = init_to_median
    return pgm.fit(rng_key, ss.latent_state_model, data=model_data, **options)


def _level_paths_and_forecasts(
    rng_key: jax.Array, result: pgm.InferenceResult, data: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """One FFBS level path and one forecast path per posterior draw."""
    level = np.asarray(result.samples["level_scale"]).reshape(-1)
    observation = np.asarray(result.samples["observation_scale"]).reshape(-1)
    y, settings = jnp.asarray(data["y"], jnp.float32), data["prior"]

    def draw(rng_key, level_scale, observation_scale):
        structure = ss.local_level(
            level_scale**2,
            observation_scale**2,
            initial_mean=settings["initial_mean"],
            initial_variance=settings["initial_variance"],
        )
        path_key, forecast_key = jax.random.split(rng_key)
        path = ss.ffbs(path_key, structure, y)[:, 0]
        predicted = ss.forecast(structure, y, HORIZON)
        noise = jax.random.normal(forecast_key, (HORIZON,))
        sd = jnp.sqrt(predicted.observation_covs[:, 0, 0])
        return path, predicted.observation_means[:, 0] + sd * noise

    keys = jax.random.split(rng_key, level.size)
    paths, forecasts = jax.jit(jax.vmap(draw))(keys, level, observation)
    return np.asarray(paths), np.asarray(forecasts)


def fit(args: argparse.Namespace) -> dict[str, Any]:
    data = load_data()
    settings = _settings(args)
    start = time.perf_counter()
    mle = maximum_likelihood(data["y"])
    mle["time"] = time.perf_counter() - start
    reference = statsmodels_reference(data["y"])
    keys = jax.random.split(jax.random.key(args.seed), 2 * len(METHODS))
    fits, paths, forecasts = {}, {}, {}
    for method in args.method:
        index = METHODS.index(method)
        fits[method] = _fit_posterior(method, keys[index], data, settings)
        paths[method], forecasts[method] = _level_paths_and_forecasts(
            keys[len(METHODS) + index], fits[method], data
        )
        if method == "latent-nuts":  # its own level draws, not FFBS
            states = np.asarray(fits[method].samples["states"])[..., 0]
            paths[method] = states.reshape(-1, states.shape[-1])
    return {
        "data": data,
        "mle": mle,
        "statsmodels": reference,
        "fits": fits,
        "paths": paths,
        "forecasts": forecasts,
        "settings": settings,
        "seed": args.seed,
    }


# ------------------------------------------------------------------------- metrics


def _variances(result: pgm.InferenceResult) -> dict[str, np.ndarray]:
    return {
        "level_variance": np.asarray(result.samples["level_scale"]) ** 2,
        "observation_variance": np.asarray(result.samples["observation_scale"]) ** 2,
    }


def _metrics(result: pgm.InferenceResult) -> dict[str, Any]:
    """Posterior summaries of the variances, ESS and ESS per second."""
    summary = {}
    for name, draws in _variances(result).items():
        ess = float(effective_sample_size(draws.astype(np.float64)))
        summary[name] = {
            "mean": float(draws.mean()),
            "sd": float(draws.std()),
            "q05": float(np.quantile(draws, 0.05)),
            "q95": float(np.quantile(draws, 0.95)),
            "ess": ess,
            "ess_per_second": ess / result.timings["total"],
        }
    summary["time"] = float(result.timings["total"])
    summary["report"] = pgm.check(result)
    return summary


# -------------------------------------------------------------------------- report


def _mle_table(results) -> list[str]:
    mle, reference = results["mle"], results["statsmodels"]
    se = mle["log_variance_se"]
    rows = [
        "| | sigma^2_eta (level) | sigma^2_eps (observation) | log-likelihood |",
        "|---|---|---|---|",
        f"| Durbin & Koopman (2012), sec. 2.10 | {PUBLISHED['level_variance']:.1f} | "
        f"{PUBLISHED['observation_variance']:.0f} | not reported here |",
        f"| Kalman MLE (this script) | {mle['level_variance']:.1f} "
        f"(log-scale se {se[0]:.2f}) | {mle['observation_variance']:.0f} "
        f"(log-scale se {se[1]:.2f}) | {mle['log_likelihood']:.3f} |",
    ]
    if reference is None:
        rows.append("| statsmodels | not installed (optional) | | |")
    else:
        rows.append(
            f"| statsmodels UnobservedComponents | {reference['level_variance']:.1f} "
            f"| {reference['observation_variance']:.0f} | "
            f"{reference['log_likelihood']:.3f} |"
        )
    return rows


def _posterior_table(metrics) -> list[str]:
    rows = [
        "| method | parameter | mean | sd | 90% interval | ESS | ESS/s | "
        "run time (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method, values in metrics.items():
        for name in ("level_variance", "observation_variance"):
            v = values[name]
            rows.append(
                f"| {method} | {name} | {v['mean']:.0f} | {v['sd']:.0f} | "
                f"[{v['q05']:.0f}, {v['q95']:.0f}] | {v['ess']:.0f} | "
                f"{v['ess_per_second']:.1f} | {values['time']:.1f} |"
            )
    return rows


def _forecast_table(data, forecasts) -> list[str]:
    draws = forecasts.get("nuts", next(iter(forecasts.values())))
    low, high = figs.bands(draws)[0.9]
    rows = ["| year | median | 90% interval |", "|---|---|---|"]
    for k in range(HORIZON):
        rows.append(
            f"| {data['year'][-1] + 1 + k} | {np.median(draws[:, k]):.0f} | "
            f"[{low[k]:.0f}, {high[k]:.0f}] |"
        )
    return rows


def _summary(results, metrics, figures) -> str:
    data, dataset = results["data"], results["data"]["dataset"]
    settings = {key: f"{value:.4g}" for key, value in data["prior"].items()}
    lines = [
        "# The Nile, 1871-1970: local level model",
        "",
        f"Data: `{dataset.name}`, {data['y'].size} annual flows at Aswan "
        "(1e8 m^3). Licence: " + dataset.license + ".",
        f"Citation: {dataset.citation}",
        "",
        "## Maximum likelihood",
        "",
        *_mle_table(results),
        "",
        f"Our MLE: L-BFGS on the log-variances, {results['mle']['time']:.1f} s "
        "including compilation; exact-diffuse likelihood (first term of the "
        "N(0, 1e7) start dropped).",
        "",
        "## Bayesian posterior (NUTS, level integrated out by the Kalman filter)",
        "",
        f"Priors scaled to the data: {settings} (half-normal scales of the two "
        "sds; normal prior of the first level). NUTS settings: "
        f"{results['settings']}, seed {results['seed']}.",
        "",
        *_posterior_table(metrics),
        "",
        "ESS is the effective sample size of each variance; run time includes "
        "compilation. `latent-nuts` samples the 100 levels explicitly "
        "(non-centred, target acceptance 0.95, started at the prior median): same "
        "posterior, but a funnel that NUTS explores slowly and with divergences "
        "(see its checks below).",
        "",
        "## 10-year forecast (posterior predictive)",
        "",
        *_forecast_table(data, results["forecasts"]),
        "",
        "## Figures",
        "",
        *[f"- `{name}`" for name in figures],
        "",
        "## Convergence checks",
        "",
    ]
    for method, values in metrics.items():
        lines += [f"### {method}", "", values["report"].to_markdown(), ""]
    return "\n".join(lines)


def report(results: Mapping[str, Any], out_dir: str | Path) -> dict[str, Any]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data, mle, fits = results["data"], results["mle"], results["fits"]
    metrics = {method: _metrics(result) for method, result in fits.items()}
    variances = {method: _variances(result) for method, result in fits.items()}
    figures = {
        "level.png": figs.plot_level(data, mle, results["paths"]),
        "forecast.png": figs.plot_forecast(data, mle, results["forecasts"]),
        "variances.png": figs.plot_variances(
            variances, mle, PUBLISHED, results["statsmodels"]
        ),
    }
    if len(results["paths"]) > 1:
        figures["methods.png"] = figs.plot_methods(data["year"], results["paths"])
    save_figures(figures, out_dir)
    # The project's standard report: trace/rank/ESS figures per sampler, the check
    # tables, summary statistics and, with both samplers, their comparison. The
    # two scales only: the latent sampler's 100 innovations and states would
    # swamp the tables (its level draws are compared in methods.png instead).
    summary = _summary(results, metrics, figures) + diagnostics_section(
        fits,
        out_dir,
        title="The Nile, local level model: diagnostics",
        var_names=list(SCALES),
        description="Per-sampler trace, rank and ESS figures, summary statistics of "
        "the two scales and the comparison of the samplers",
    )
    (out_dir / "summary.md").write_text(summary)
    return {"mle": mle, "statsmodels": results["statsmodels"], "posterior": metrics}


# ---------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Local level model of the Nile: Kalman MLE, NUTS on the "
        "marginalised model, smoothed level and forecast."
    )
    parser.add_argument(
        "--method",
        nargs="+",
        choices=METHODS,
        default=None,
        help="posterior samplers (default: both; with --quick: nuts)",
    )
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--num-warmup", type=int, default=1000)
    parser.add_argument("--num-chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default="results/state_space_nile")
    parser.add_argument(
        "--quick", action="store_true", help=f"tiny settings for a smoke run: {QUICK}"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = _parser().parse_args(argv)
    if args.method is None:
        args.method = ["nuts"] if args.quick else list(METHODS)
    args.method = list(dict.fromkeys(args.method))
    return fit_and_report(args, fit, report)


if __name__ == "__main__":
    main()
