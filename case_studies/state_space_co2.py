r"""Case study: weekly Mauna Loa CO2, 1958-2001, trend plus seasonal cycle.

Weekly atmospheric CO2 at Mauna Loa (2,284 weeks from March 1958 to December 2001,
ppm) rises steadily and swings with the northern-hemisphere growing season; 59 weeks
are missing. We model it as a basic structural time series, a linear-Gaussian case of
the state-space model of seed ``003_02afaf35b30b64a9.txt``, Example 3.3:

.. math::

    y_t = \mu_t + \gamma_t + \varepsilon_t, \quad
    \mu_{t+1} = \mu_t + \nu_t + \xi_t, \quad \nu_{t+1} = \nu_t + \zeta_t,

a local linear trend (level :math:`\mu_t`, weekly slope :math:`\nu_t`) plus a
trigonometric seasonal :math:`\gamma_t` of period :math:`s = 365.25 / 7 \approx
52.18` weeks with :math:`K = 4` stochastic harmonics
(:func:`numpyro_pgm.models.structural.trigonometric_seasonal`): 10 states instead of
the 53 of a local linear trend with a 52-dummy seasonal, and a period that need not
be a whole number of weeks. All four disturbances are Gaussian with unknown sds
:math:`\sigma_\xi, \sigma_\zeta, \sigma_\omega, \sigma_\varepsilon`.

The states are integrated out by the Kalman filter
(:func:`numpyro_pgm.models.state_space.model`), so inference is over the four sds
only. Missing weeks are ``NaN``: the filter skips their update step (their
likelihood terms are exactly zero), and the smoother fills them in from both sides;
nothing is imputed. Priors are half-normal on the sds, scaled to weekly ppm:
:math:`\sigma_\varepsilon \sim HN(1)`, :math:`\sigma_\xi \sim HN(0.5)`,
:math:`\sigma_\omega \sim HN(0.1)`, :math:`\sigma_\zeta \sim HN(0.01)` (the trend
rises about 0.03 ppm a week, so its week-to-week change must be far smaller). The
series is centred on the mean of its first observed year, and every initial state
has a proper prior :math:`\mathcal N(0, 10^2)` (10 ppm; 10 ppm a week for the
slope), wide on the scale of the data and kind to single precision.

Parameters are estimated by ``--method``: ``map`` (the posterior mode),
``laplace`` (a Gaussian around it on the log-sd scale, the default) or ``nuts``
(exact but slow on 2,284 weeks). For each of up to 200 posterior draws the
Rauch-Tung-Striebel smoother gives the trend and the seasonal effect with their
variances; drawing from each draw's Gaussians and pooling gives bands that carry
the parameter uncertainty too. The same is done for a two-year forecast. The
standardised one-step prediction errors check the fit.

``--quick`` fits only 1962-1966 (261 weeks, 32 of them missing, among them an
18-week gap in 1964) by MAP, a smoke run of well under a minute; ``--first-year``
and ``--last-year`` choose other years. Figures
(``decomposition.png``, ``missing.png``, ``forecast.png``, ``innovations.png``,
drawn by :mod:`numpyro_pgm.case_studies._co2_figures`) and ``summary.md`` go to
``--out-dir``, the project's standard report of the fit (:func:`numpyro_pgm.report`)
to its ``diagnostics`` folder.

References
----------
.. [1] C. D. Keeling and T. P. Whorf, atmospheric CO2 records from sites in the SIO
   air sampling network, in *Trends: A Compendium of Data on Global Change*, CDIAC
   (2004).
.. [2] J. Durbin and S. J. Koopman, *Time Series Analysis by State Space Methods*,
   2nd ed., Oxford University Press (2012), sections 3.2 and 4.10 (missing values).
.. [3] A. C. Harvey, *Forecasting, Structural Time Series Models and the Kalman
   Filter*, Cambridge University Press (1989), section 2.3.
.. [4] F. Tobar, *Probabilistic Generative Models*, lecture notes (2026), seed
   ``003_02afaf35b30b64a9.txt``, Example 3.3.
"""

import argparse
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import numpyro  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
from numpyro_pgm.case_studies import _co2_figures as figs  # noqa: E402
from numpyro_pgm.case_studies._outputs import (  # noqa: E402
    diagnostics_section,
    fit_and_report,
    save_figures,
)
from numpyro_pgm.models import state_space as ss  # noqa: E402

import numpyro_pgm as pgm  # noqa: E402
from numpyro_pgm import datasets  # noqa: E402

METHODS = ("map", "laplace", "nuts")
PERIOD = 365.25 / 7
NUM_HARMONICS = 4
PRIOR_SCALES = {
    "level_scale": 0.5,
    "slope_scale": 0.01,
    "seasonal_scale": 0.1,
    "observation_scale": 1.0,
}
INITIAL_VARIANCE = 100.0
HORIZON = 104
MAX_DRAWS = 200  # parameter draws used for the decomposition and forecast
NUM_PATHS = 1000  # pooled draws of each component, for its bands
# Five years with 32 missing weeks, among them an 18-week gap in 1964.
QUICK = {"first_year": 1962, "last_year": 1966, "method": "map"}
# L-BFGS on the four log-sds. In single precision the gradient of a sum of 2,284
# terms carries rounding noise of order 1e-3, so a 1e-5 tolerance is never met; at
# 1e-2 the mode is off by about grad / curvature < 1e-4 on the log scale.
OPTIMIZER = {"optimizer": "lbfgs", "tolerance": 1e-2, "max_iterations": 300}


# ----------------------------------------------------------------------------- data


def load_data(first_year: int | None = None, last_year: int | None = None) -> dict:
    """Load the weekly series (optionally years first..last), centred on year one."""
    dataset = datasets.load("co2")
    first = -np.inf if first_year is None else first_year
    last = np.inf if last_year is None else last_year + 1
    keep = (dataset.time >= first) & (dataset.time < last)
    if not keep.any() or np.isnan(dataset.y[keep]).all():
        raise ValueError(
            "first_year and last_year must select observed weeks between 1958 and "
            f"2001; got first_year={first_year}, last_year={last_year}."
        )
    y, time_ = dataset.y[keep], dataset.time[keep]
    offset = float(np.nanmean(y[time_ < time_[0] + 1.0]))
    return {
        "y": y - offset,
        "offset": offset,
        "time": time_,
        "date": dataset.date[keep],
        "missing": np.isnan(y),
        "dataset": dataset,
    }


# --------------------------------------------------------------------------- model


def structure(scales: Mapping[str, Any]) -> ss.LinearGaussianSSM:
    """Local linear trend plus trigonometric seasonal from the four sds."""
    trend = ss.local_linear_trend(
        scales["level_scale"] ** 2,
        scales["slope_scale"] ** 2,
        scales["observation_scale"] ** 2,
        initial_variance=INITIAL_VARIANCE,
    )
    seasonal = ss.trigonometric_seasonal(
        PERIOD,
        NUM_HARMONICS,
        scales["seasonal_scale"] ** 2,
        initial_variance=INITIAL_VARIANCE,
    )
    return ss.combine(trend, seasonal)


def _prior() -> ss.LinearGaussianSSM:
    # sigma ~ HN(s) as sigma = s * u, u ~ HN(1): the same prior, with every
    # unconstrained coordinate (log u) of order one, which the optimiser, the
    # Laplace Hessian and NUTS's step size all prefer to sds spanning 1e-4..1.
    scales = {
        name: numpyro.deterministic(
            name, scale * numpyro.sample(f"{name}_std", dist.HalfNormal(1.0))
        )
        for name, scale in PRIOR_SCALES.items()
    }
    return structure(scales)


@pgm.allow_missing("y")
def co2_model(y=None, *, num_timesteps=None):
    """Run the structural model with the states integrated out (NaN = missing)."""
    ss.model(y, ssm=_prior, num_timesteps=num_timesteps)


# ----------------------------------------------------------------------------- fit


def fit(args: argparse.Namespace) -> dict[str, Any]:
    data = load_data(args.first_year, args.last_year)
    model_data = {"y": data["y"]}
    rng_key = jax.random.key(args.seed)
    common = {"data": model_data, "checks": False}  # checks reported in summary.md
    if args.method == "nuts":
        result = pgm.fit(
            rng_key,
            co2_model,
            method="nuts",
            num_warmup=args.num_warmup,
            num_samples=args.num_samples,
            num_chains=args.num_chains,
            progress_bar=False,
            **common,
        )
    elif args.method == "laplace":
        result = pgm.fit(
            rng_key,
            co2_model,
            method="laplace",
            num_samples=MAX_DRAWS,
            **OPTIMIZER,
            **common,
        )
    else:
        result = pgm.fit(rng_key, co2_model, method="map", **OPTIMIZER, **common)
    start = time.perf_counter()
    components = decompose(jax.random.fold_in(rng_key, 1), result, data)
    components["time"] = time.perf_counter() - start
    return {"data": data, "result": result, "components": components, "args": args}


def _scales(result: pgm.InferenceResult) -> dict[str, np.ndarray]:
    """Up to MAX_DRAWS draws of each sd, evenly thinned, flattened over chains."""
    flat = {k: np.asarray(result.samples[k]).reshape(-1) for k in PRIOR_SCALES}
    size = next(iter(flat.values())).size
    index = np.linspace(0, size - 1, min(size, MAX_DRAWS)).round().astype(int)
    return {k: v[index] for k, v in flat.items()}


def decompose(
    rng_key: jax.Array, result: pgm.InferenceResult, data: Mapping[str, Any]
) -> dict[str, np.ndarray]:
    """Pool draws of trend, seasonal and forecast; innovations at the mean sds.

    For each parameter draw the smoother and the forecast give Gaussian marginals;
    ``NUM_PATHS / num_draws`` values are drawn from each (all of them at the
    mode for a MAP fit, whose bands are then conditional on the mode).
    """
    y = jnp.asarray(data["y"], jnp.float32)
    scales = _scales(result)
    trend_row = jnp.zeros(2 + 2 * NUM_HARMONICS).at[0].set(1.0)
    seasonal_row = ss.trigonometric_seasonal(PERIOD, NUM_HARMONICS, 0.0)
    seasonal_row = jnp.concatenate([jnp.zeros(2), seasonal_row.observation_matrix[0]])

    def one_draw(inputs):
        draw_scales, rng_key = inputs
        model = structure(draw_scales)
        smoothed = ss.rts_smoother(model, y)
        predicted = ss.forecast(model, y, HORIZON)
        out = {}
        rows = {
            "trend": trend_row,
            "seasonal": seasonal_row,
            "signal": trend_row + seasonal_row,  # its own marginal: they correlate
        }
        for name, row in rows.items():
            mean = smoothed.smoothed_means @ row
            variance = jnp.einsum("i,tij,j->t", row, smoothed.smoothed_covs, row)
            out[name] = (mean, variance)
        out["forecast"] = (
            predicted.observation_means[:, 0],
            predicted.observation_covs[:, 0, 0],
        )
        keys = jax.random.split(rng_key, len(out))
        samples = {}
        for key, (name, (mean, variance)) in zip(keys, out.items(), strict=True):
            noise = jax.random.normal(key, (repeats,) + mean.shape)
            samples[name] = mean + jnp.sqrt(jnp.clip(variance, 0.0)) * noise
        return samples

    num_draws = next(iter(scales.values())).size
    repeats = -(-NUM_PATHS // num_draws)  # several per draw; a MAP fit: all at one
    keys = jax.random.split(rng_key, num_draws)
    inputs = ({k: jnp.asarray(v) for k, v in scales.items()}, keys)
    draws = jax.lax.map(one_draw, inputs, batch_size=min(num_draws, 20))
    draws = {k: v.reshape((-1,) + v.shape[2:]) for k, v in draws.items()}
    mean_scales = {k: float(np.mean(v)) for k, v in scales.items()}
    filtered = ss.kalman_filter(structure(mean_scales), y)
    model = structure(mean_scales)
    H, R = model.observation_matrix, model.observation_cov
    innovation = y - (filtered.predicted_means @ H.T)[:, 0]
    variance = (H @ filtered.predicted_covs @ H.T + R)[:, 0, 0]
    observed = ~data["missing"]
    terms = np.asarray(filtered.log_likelihood_terms)
    return {
        **{name: np.asarray(value) for name, value in draws.items()},
        "scales": scales,
        "standardized_innovations": np.asarray(innovation / jnp.sqrt(variance))[
            observed
        ],
        "missing_terms_are_zero": bool(np.all(terms[data["missing"]] == 0.0)),
    }


# -------------------------------------------------------------------------- report


def _parameter_table(components) -> list[str]:
    rows = [
        "| sd (ppm per week) | prior scale | estimate | 90% interval |",
        "|---|---|---|---|",
    ]
    for name, scale in PRIOR_SCALES.items():
        draws = components["scales"][name]
        low, high = np.quantile(draws, [0.05, 0.95])
        interval = "-" if draws.size == 1 else f"[{low:.4g}, {high:.4g}]"
        rows.append(f"| {name} | {scale:g} | {np.median(draws):.4g} | {interval} |")
    return rows


def _forecast_table(data, components) -> list[str]:
    draws = components["forecast"] + data["offset"]
    low, high = figs.bands(draws)[0.9]
    last = np.datetime64(str(data["date"][-1]))
    rows = ["| week | date | median (ppm) | 90% interval |", "|---|---|---|---|"]
    for k in (1, 13, 26, 52, HORIZON):
        date = last + np.timedelta64(7 * k, "D")
        rows.append(
            f"| +{k} | {date} | {np.median(draws[:, k - 1]):.2f} | "
            f"[{low[k - 1]:.2f}, {high[k - 1]:.2f}] |"
        )
    return rows


def _summary(results, figures, metrics) -> str:
    data, dataset, args = results["data"], results["data"]["dataset"], results["args"]
    result, components = results["result"], results["components"]
    z = components["standardized_innovations"]
    lines = [
        "# Mauna Loa weekly CO2: local linear trend + trigonometric seasonal",
        "",
        f"Data: `{dataset.name}`, weeks {data['date'][0]} to {data['date'][-1]} "
        f"({data['y'].size} weeks, {int(data['missing'].sum())} missing). "
        f"Licence: {dataset.license}.",
        f"Citation: {dataset.citation}",
        "",
        f"Model: period {PERIOD:.4f} weeks, {NUM_HARMONICS} harmonics "
        f"({2 + 2 * NUM_HARMONICS} states); series centred on "
        f"{data['offset']:.2f} ppm (mean of its first year); initial states "
        f"N(0, {INITIAL_VARIANCE:g}).",
        f"Method: `{args.method}`, seed {args.seed}; fit {result.timings['total']:.1f} "
        f"s, decomposition {components['time']:.1f} s (both include compilation).",
        "",
        "## Parameters",
        "",
        *_parameter_table(components),
        "",
        f"Estimate: the mode (map) or the posterior median over "
        f"{components['scales']['level_scale'].size} draw(s).",
        "",
        "## Missing weeks",
        "",
        "Missing weeks are NaN in the data and skipped by the filter's update step: "
        "their log-likelihood terms are exactly zero "
        f"({'yes' if components['missing_terms_are_zero'] else 'NO'}), and the "
        "smoother fills them in from both sides (red ticks in `decomposition.png`, "
        "the longest gap in `missing.png`).",
        "",
        "## One-step prediction errors",
        "",
        f"Standardised errors at the mean sds: mean {z.mean():.3f}, sd {z.std():.3f} "
        f"(1 if the model is right), lag-1 autocorrelation "
        f"{metrics['innovation_lag1']:.3f}.",
        "",
        "## Forecast",
        "",
        *_forecast_table(data, components),
        "",
        "## Figures",
        "",
        *[f"- `{name}`" for name in figures],
        "",
        "## Checks",
        "",
        metrics["report"].to_markdown(),
        "",
    ]
    return "\n".join(lines)


def report(results: Mapping[str, Any], out_dir: str | Path) -> dict[str, Any]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data, components = results["data"], results["components"]
    z = components["standardized_innovations"]
    metrics = {
        "scales": {k: float(np.median(v)) for k, v in components["scales"].items()},
        "innovation_sd": float(z.std()),
        "innovation_lag1": float(np.corrcoef(z[1:], z[:-1])[0, 1]),
        "missing_terms_are_zero": components["missing_terms_are_zero"],
        "forecast_median": np.median(components["forecast"], 0) + data["offset"],
        "report": pgm.check(results["result"]),
    }
    figures = {
        "decomposition.png": figs.plot_decomposition(data, components),
        "forecast.png": figs.plot_forecast(data, components),
        "innovations.png": figs.plot_innovations(data, components),
    }
    if data["missing"].any():
        figures["missing.png"] = figs.plot_gap(data, components)
    save_figures(figures, out_dir)
    # The project's standard report of the fit: its checks, summary statistics of
    # the four sds and the figures that apply to the method (trace, rank and ESS
    # for NUTS; Pareto k-hat for Laplace; none but the table for MAP).
    method = results["args"].method
    summary = _summary(results, figures, metrics) + diagnostics_section(
        {method: results["result"]},
        out_dir,
        title="Mauna Loa CO2, trend + seasonal: diagnostics",
        var_names=list(PRIOR_SCALES),
        description="The fit's checks, summary statistics of the four sds and its "
        "diagnostic figures",
    )
    (out_dir / "summary.md").write_text(summary)
    return metrics


# ---------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Weekly Mauna Loa CO2 as local linear trend + trigonometric "
        "seasonal: parameters, decomposition and forecast."
    )
    parser.add_argument(
        "--method",
        choices=METHODS,
        default=None,
        help="map, laplace (default) or nuts (slow)",
    )
    parser.add_argument(
        "--first-year", type=int, default=None, help="first year to fit (default: 1958)"
    )
    parser.add_argument(
        "--last-year", type=int, default=None, help="last year to fit (default: 2001)"
    )
    parser.add_argument("--num-samples", type=int, default=500)
    parser.add_argument("--num-warmup", type=int, default=500)
    parser.add_argument("--num-chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default="results/state_space_co2")
    parser.add_argument(
        "--quick", action="store_true", help=f"smoke run: {QUICK} unless given"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = _parser().parse_args(argv)
    if args.quick:
        args.first_year = args.first_year or QUICK["first_year"]
        args.last_year = args.last_year or QUICK["last_year"]
        args.method = args.method or QUICK["method"]
    args.method = args.method or "laplace"
    return fit_and_report(args, fit, report)


if __name__ == "__main__":
    main()
