"""Tests for Bayesian matrix factorisation: model, CAVI, Gibbs, SVI and prediction.

Tolerances:

* exact identities run in float64 and use ``EXACT_RTOL`` (a few thousand ulps of
  float64, far above the rounding of sums over <= 1e3 terms);
* Monte Carlo checks assert ``|estimate - expected| <= Z * standard_error`` with
  ``Z = 4`` (two-sided normal tail 6.3e-5 per statistic; at most ~100 statistics
  per test, so a chance failure below 1e-2 per test, and far below for the
  typical test with a handful);
* method agreement and recovery use tolerances stated next to the assertion,
  each with its reason.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from numpyro.diagnostics import effective_sample_size
from numpyro.infer import init_to_value
from numpyro.infer.util import log_density
from numpyro_pgm.models import matrix_factorization as mf
from numpyro_pgm.models import matrix_factorization_cavi as mfc
from numpyro_pgm.models import matrix_factorization_checks as mfk
from numpyro_pgm.models import matrix_factorization_gibbs as mfg
from numpyro_pgm.models import matrix_factorization_init as mfi
from numpyro_pgm.models import matrix_factorization_predict as mfp
from scipy import stats

import numpyro_pgm as pgm

Z = 4.0
EXACT_RTOL = 1e-12 * 4096
VARIANTS = {
    "plain": {},
    "biases": {"biases": True, "offset": 0.3, "bias_scale": 0.7},
    "hyperprior": {"hyperprior": True, "precision_shape": 2.0, "precision_rate": 1.5},
    "both": {"biases": True, "hyperprior": True, "offset": -0.2},
}
TINY = {"num_users": 7, "num_items": 5, "num_factors": 2}


def _data(sim, **settings):
    data = {k: np.asarray(sim[k]) for k in ("user", "item", "rating")}
    return {**data, **settings}


@functools.cache
def _tiny(variant):
    """A tiny simulated problem and its CAVI fit, in float64."""
    kwargs = {**VARIANTS[variant], "user_scale": 0.8, "obs_scale": 0.6}
    with jax.enable_x64(True):
        sim = mf.simulate(jax.random.key(1), num_ratings=24, **TINY, **kwargs)
        sim = {k: np.asarray(v) for k, v in sim.items()}
        fit = mfc.cavi(
            jax.random.key(2),
            sim["user"],
            sim["item"],
            sim["rating"],
            num_iterations=300,
            tol=1e-10,
            **TINY,
            **kwargs,
        )
    return sim, fit, kwargs


# ---------------------------------------------------------------------- exact tier


def test_model_sites_plates_and_simulate_agree():
    sim = mf.simulate(
        jax.random.key(0), num_ratings=20, biases=True, hyperprior=True, **TINY
    )
    assert sim["user_factors"].shape == (2, 7)
    assert sim["item_factors"].shape == (2, 5)
    assert sim["user"].shape == sim["item"].shape == sim["rating"].shape == (20,)
    cells = np.asarray(sim["user"]) * 5 + np.asarray(sim["item"])
    assert np.unique(cells).size == 20, "observed cells are distinct"
    params = {k: v for k, v in sim.items() if k not in ("user", "item", "rating")}
    data = _data(sim, **TINY, biases=True, hyperprior=True)
    _, trace = log_density(mf.model, (), data, params)
    plates = {
        name: {frame.name for frame in site["cond_indep_stack"]}
        for name, site in trace.items()
        if site["type"] == "sample"
    }
    assert plates["user_factors"] == {"factor", "user"}
    assert plates["item_factors"] == {"factor", "item"}
    assert plates["user_bias"] == {"user"}
    assert plates["obs"] == {"rating"}
    assert plates["obs_precision"] == set()


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_log_joint_matches_scipy(variant):
    kwargs = VARIANTS[variant]
    with jax.enable_x64(True):
        sim = mf.simulate(jax.random.key(3), num_ratings=15, **TINY, **kwargs)
        params = {k: v for k, v in sim.items() if k not in ("user", "item", "rating")}
        log_joint, _ = log_density(mf.model, (), _data(sim, **TINY, **kwargs), params)
    v = {k: np.asarray(x, dtype=float) for k, x in sim.items()}
    user, item = np.asarray(sim["user"]), np.asarray(sim["item"])
    settings = mf.model_settings(kwargs)
    if settings["hyperprior"]:
        gamma = stats.gamma(
            settings["precision_shape"], scale=1 / settings["precision_rate"]
        )
        expected = sum(gamma.logpdf(v[n]) for n in mfg.PRECISION_SITES)
        scales = [v[n] ** -0.5 for n in mfg.PRECISION_SITES]
    else:
        expected, scales = 0.0, [1.0, 1.0, 1.0]
    expected += stats.norm(0, scales[0]).logpdf(v["user_factors"]).sum()
    expected += stats.norm(0, scales[1]).logpdf(v["item_factors"]).sum()
    loc = settings["offset"] + np.sum(
        v["user_factors"][:, user] * v["item_factors"][:, item], 0
    )
    if settings["biases"]:
        bias = stats.norm(0, settings["bias_scale"])
        expected += (
            bias.logpdf(v["user_bias"]).sum() + bias.logpdf(v["item_bias"]).sum()
        )
        loc = loc + v["user_bias"][user] + v["item_bias"][item]
    expected += stats.norm(loc, scales[2]).logpdf(v["rating"]).sum()
    np.testing.assert_allclose(float(log_joint), expected, rtol=EXACT_RTOL)


def test_cavi_user_update_is_the_seed_formula():
    """The segment-sum update equals the seed's per-user loop, for chunked sums too."""
    sim, fit, kwargs = _tiny("plain")
    user, item, rating = sim["user"], sim["item"], sim["rating"]
    sigma_u, sigma = kwargs["user_scale"], kwargs["obs_scale"]
    with jax.enable_x64(True):
        state = mfc._State(
            fit.user_mean, fit.user_cov, fit.item_mean, fit.item_cov, *[jnp.ones(3)] * 2
        )
        static = {**mf.model_settings(kwargs), **TINY}
        updated = [
            mfc._update_side(state, "user", user, item, rating, static, chunk)
            for chunk in (16_384, 5)
        ]
    mu_v, cov_v = np.asarray(fit.item_mean), np.asarray(fit.item_cov)
    for i in range(TINY["num_users"]):
        rated = item[user == i]
        precision = (
            np.eye(2) / sigma_u**2
            + sum(np.outer(mu_v[j], mu_v[j]) + cov_v[j] for j in rated) / sigma**2
        )
        cov = np.linalg.inv(precision)
        mean = (
            cov
            @ sum(
                (r * mu_v[j] for r, j in zip(rating[user == i], rated, strict=True)),
                np.zeros(2),
            )
            / sigma**2
        )
        for new in updated:
            np.testing.assert_allclose(new.user_cov[i], cov, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(new.user_mean[i], mean, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_cavi_elbo_never_decreases_and_converges(variant):
    _, fit, _ = _tiny(variant)
    elbo = fit.elbo
    assert np.all(np.isfinite(elbo))
    # float64 rounding of an ELBO of size |L| is ~1e-16 |L| per operation.
    assert np.all(np.diff(elbo) >= -1e-10 * np.abs(elbo[1:]))
    assert fit.converged


@pytest.mark.parametrize("variant", ["plain", "both"])
def test_cavi_elbo_equals_monte_carlo_elbo(variant):
    """The closed-form ELBO is E_q[log p(R, z) - log q(z)], by Z * MCSE."""
    sim, fit, kwargs = _tiny(variant)
    num_draws = 4000
    with jax.enable_x64(True):
        draws = mfp.sample_posterior(jax.random.key(4), fit, num_draws)
        draws = {k: v[0] for k, v in draws.items()}
        data = _data(sim, **TINY, **kwargs)
        log_p = jax.jit(jax.vmap(lambda z: log_density(mf.model, (), data, z)[0]))(
            draws
        )
    log_p = np.asarray(log_p)
    settings = {**mf.model_settings(kwargs), **TINY}
    log_q = np.zeros(num_draws)
    k = settings["num_factors"]
    for side in ("user", "item"):
        free = np.swapaxes(draws[f"{side}_factors"], -1, -2)
        if settings["biases"]:
            free = np.concatenate([free, draws[f"{side}_bias"][..., None]], -1)
        mean = np.asarray(getattr(fit, f"{side}_mean"))
        cov = np.asarray(getattr(fit, f"{side}_cov"))
        for row in range(mean.shape[0]):
            log_q += stats.multivariate_normal(mean[row], cov[row]).logpdf(
                free[:, row, : k + int(settings["biases"])]
            )
    if settings["hyperprior"]:
        for index, name in enumerate(mfg.PRECISION_SITES):
            shape = float(fit.precision_shape[index])
            rate = float(fit.precision_rate[index])
            log_q += stats.gamma(shape, scale=1 / rate).logpdf(draws[name])
    terms = log_p - log_q
    standard_error = terms.std(ddof=1) / math.sqrt(num_draws)
    assert abs(terms.mean() - fit.elbo[-1]) <= Z * standard_error


def _conditional_from_hessian(data, values, sites):
    """Exact Gaussian conditional of a block of sites from the model's log density."""
    shapes = [values[site].shape for site in sites]
    sizes = [math.prod(shape) for shape in shapes]

    @jax.jit
    def log_joint(flat):
        parts = jnp.split(flat, np.cumsum(sizes)[:-1])
        block = {
            s: p.reshape(shape)
            for s, p, shape in zip(sites, parts, shapes, strict=True)
        }
        return log_density(mf.model, (), data, {**values, **block})[0]

    start = jnp.concatenate([jnp.ravel(values[site]) for site in sites])
    cov = jnp.linalg.inv(-jax.hessian(log_joint)(start))
    return np.asarray(start + cov @ jax.grad(log_joint)(start)), np.asarray(cov)


@pytest.mark.parametrize("variant", ["plain", "both"])
def test_gibbs_factor_updates_draw_the_exact_conditional(variant):
    sim, _, kwargs = _tiny(variant)
    data = _data(sim, **TINY, **kwargs)
    num_draws = 4000
    with jax.enable_x64(True):
        values = {
            k: jnp.asarray(v)
            for k, v in sim.items()
            if k not in ("user", "item", "rating")
        }
        for block, update in mfg.gibbs_conditionals(**data).items():
            sites = (block,) if isinstance(block, str) else block
            if "obs_precision" in sites:
                continue
            draws = jax.jit(jax.vmap(lambda key, u=update: u(key, values, data)))(
                jax.random.split(jax.random.key(5), num_draws)
            )
            flat = np.concatenate(
                [np.asarray(draws[s]).reshape(num_draws, -1) for s in sites], -1
            )
            mean, cov = _conditional_from_hessian(data, values, sites)
            sd = np.sqrt(np.diag(cov))
            np.testing.assert_array_less(
                np.abs(flat.mean(0) - mean), Z * sd / math.sqrt(num_draws)
            )
            # Var of a sample variance of Gaussian draws: 2 sd^4 / S.
            np.testing.assert_array_less(
                np.abs(flat.var(0, ddof=1) - sd**2),
                Z * math.sqrt(2 / num_draws) * sd**2,
            )


def test_gibbs_precision_update_draws_the_exact_gamma_conditional():
    """Shape and rate read off the model's log density at three points."""
    sim, _, kwargs = _tiny("both")
    data = _data(sim, **TINY, **kwargs)
    num_draws = 4000
    with jax.enable_x64(True):
        values = {
            k: jnp.asarray(v)
            for k, v in sim.items()
            if k not in ("user", "item", "rating")
        }
        draws = jax.vmap(lambda key: mfg.update_precisions(key, values, data))(
            jax.random.split(jax.random.key(6), num_draws)
        )
        for site in mfg.PRECISION_SITES:
            points = np.array([0.5, 1.0, 2.0])
            log_joint = [
                float(log_density(mf.model, (), data, {**values, site: p})[0])
                for p in points
            ]
            # log p = (a - 1) log x - b x + c: solve for (a - 1, b, c).
            design = np.stack([np.log(points), -points, np.ones(3)], -1)
            a_minus_1, rate, _ = np.linalg.solve(design, log_joint)
            shape = a_minus_1 + 1
            draw = np.asarray(draws[site])
            mean, var = shape / rate, shape / rate**2
            assert abs(draw.mean() - mean) <= Z * math.sqrt(var / num_draws)
            # Var of the sample variance: (m4 - var^2) / S, Gamma m4 = 3var^2(1+2/a).
            m4 = 3 * var**2 * (1 + 2 / shape)
            assert abs(draw.var(ddof=1) - var) <= Z * math.sqrt(
                (m4 - var**2) / num_draws
            )


# ------------------------------------------------------------------- recovery tier

SMALL = {"num_users": 30, "num_items": 20, "num_factors": 2, "obs_scale": 0.5}
NUM_TRAIN = 360


@pytest.fixture(scope="module")
def small():
    """A rank-2 problem with 360 training and 120 held-out ratings."""
    sim = mf.simulate(
        jax.random.key(10),
        num_ratings=NUM_TRAIN + 120,
        **SMALL,
    )
    sim = {k: np.asarray(v) for k, v in sim.items()}
    train = {k: sim[k][:NUM_TRAIN] for k in ("user", "item", "rating")}
    test = {k: sim[k][NUM_TRAIN:] for k in ("user", "item", "rating")}
    truth = sim["user_factors"].T @ sim["item_factors"]
    return {"data": {**train, **SMALL}, "test": test, "truth": truth}


@pytest.fixture(scope="module")
def fits(small):
    data = small["data"]
    cavi = mfc.cavi(jax.random.key(11), num_iterations=1000, **data)
    # Started at the spectral estimate: from a prior draw a chain ends in a worse
    # local mode in about 1% of runs on problems of this size.
    gibbs = pgm.fit(
        jax.random.key(12),
        mf.model,
        data=data,
        method="gibbs",
        conditionals=mfg.gibbs_conditionals(**data),
        init_params=mfi.spectral_init(**data),
        num_warmup=200,
        num_samples=500,
        num_chains=2,
        progress_bar=False,
        checks=False,  # the factors are identified only up to rotation
    )
    num_steps = 2000
    svi = pgm.fit(
        jax.random.key(13),
        mf.model,
        data={**data, "subsample_size": 100},
        method="svi",
        guide=mf.mean_field_guide,
        num_steps=num_steps,
        optimizer=optax.adam(optax.cosine_decay_schedule(0.05, num_steps, 0.02)),
        stop_on_plateau=False,
        num_samples=400,
        progress_bar=False,
        checks=False,
    )
    return {"cavi": cavi, "gibbs": gibbs, "svi": svi}


@pytest.fixture(scope="module")
def all_cells(small):
    user, item = np.divmod(np.arange(20 * 30), 20)
    return user, item


def test_cavi_recovers_the_low_rank_matrix(small, fits, all_cells):
    """U V^T (identified, unlike U and V) is recovered at the parametric rate.

    With known column spaces the least-squares error per entry would be
    sigma * sqrt(K (N + M) / n) (degrees of freedom over observations); we allow
    twice this oracle rate, and ask that the estimate be far better than the
    trivial estimate 0 (whose error is the truth's RMS).
    """
    fit = fits["cavi"]
    estimate = np.asarray(fit.user_mean) @ np.asarray(fit.item_mean).T
    truth = small["truth"]
    error = np.sqrt(np.mean((estimate - truth) ** 2))
    oracle = 0.5 * math.sqrt(2 * (30 + 20) / NUM_TRAIN)
    assert error <= 2 * oracle
    assert error <= 0.5 * np.sqrt(np.mean(truth**2))
    # The bound has power: the same estimate with its users shuffled fails it.
    shuffled = estimate[np.random.default_rng(0).permutation(estimate.shape[0])]
    assert np.sqrt(np.mean((shuffled - truth) ** 2)) > 2 * oracle
    np.testing.assert_allclose(
        np.linalg.svd(estimate, compute_uv=False)[:2],
        np.linalg.svd(truth, compute_uv=False)[:2],
        rtol=0.15,  # singular values of an n/(NM)=60% sample: error ~ oracle * sqrt(NM)
    )


def test_methods_agree_on_predictions(small, fits, all_cells):
    """CAVI and SVI predict like the exact posterior (Gibbs).

    Tolerance: the RMS over all 600 cells of the gap in posterior mean, in units
    of the Gibbs posterior sd of the expected rating, must be below 0.25 plus
    the Monte Carlo error Z * sqrt(1/ESS + 1/S). Reason: with ~12 ratings per
    user the posterior is near Gaussian and near independent across users and
    items, so the mean-field means are exact to first order (Blei et al. 2017,
    §5); gaps of a quarter sd do not change any prediction, as the noise sd
    (0.5) is twice the posterior sd of the expected rating.
    """
    user, item = all_cells
    gibbs = mfp.predict(jax.random.key(20), fits["gibbs"], user, item, num_draws=None)
    gibbs_loc = np.einsum(
        "cdki,cdkj->cdij",
        fits["gibbs"].samples["user_factors"],
        fits["gibbs"].samples["item_factors"],
    ).reshape(2, 500, -1)
    ess = float(np.min(effective_sample_size(gibbs_loc)))
    assert ess > 100
    for name, num_draws in (("cavi", 1000), ("svi", 400)):
        other = mfp.predict(jax.random.key(21), fits[name], user, item, num_draws=None)
        assert other.num_draws == num_draws
        gap = (other.mean - gibbs.mean) / gibbs.loc_sd
        tolerance = 0.25 + Z * math.sqrt(1 / ess + 1 / num_draws)
        assert np.sqrt(np.mean(gap**2)) <= tolerance, name
        # Mean-field underestimates posterior spread but not by half here.
        assert 0.5 <= np.median(other.loc_sd / gibbs.loc_sd) <= 1.1, name
    # The tolerance has power: CAVI's predictions for the wrong items fail it.
    wrong = mfp.predict(
        jax.random.key(21), fits["cavi"], user, (item + 1) % 20, num_draws=None
    )
    gap = (wrong.mean - gibbs.mean) / gibbs.loc_sd
    assert np.sqrt(np.mean(gap**2)) > 0.25 + Z * math.sqrt(1 / ess + 1 / 1000)


def test_gibbs_predictive_intervals_cover_held_out_ratings(small, fits):
    """The exact posterior predictive is calibrated on average over the prior.

    The truth was drawn from the prior, so 90% intervals cover a held-out rating
    with probability 0.9; over 120 held-out ratings the binomial sd is
    sqrt(0.09 / 120) = 0.027 and we allow Z of them.
    """
    test = small["test"]
    prediction = mfp.predict(
        jax.random.key(22), fits["gibbs"], test["user"], test["item"], prob=0.9
    )
    scores = mfp.score(prediction, test["rating"])
    assert abs(scores["coverage"] - 0.9) <= Z * math.sqrt(0.09 / 120)
    # The predictive sd is at least the noise sd and the RMSE is of its size.
    assert np.all(prediction.sd >= 0.5 * (1 - 1e-6))
    assert scores["rmse"] <= 2 * float(np.sqrt(np.mean(prediction.sd**2)))


def test_svi_with_minibatches_runs_and_skips_importance_weights(fits):
    svi = fits["svi"]
    assert svi.settings["num_steps"] == 2000
    assert np.all(np.isnan(svi.sample_stats["log_weight"]))
    assert svi.samples["user_factors"].shape == (1, 400, 2, 30)
    assert {"user_factors_loc", "item_factors_scale"} <= set(
        svi.groups["learned_params"]
    )


@pytest.mark.slow
def test_nuts_and_gibbs_agree_within_monte_carlo_error(small, fits, all_cells):
    """Both are exact: their posterior means of every U V^T entry agree by MCSE.

    Z = 4.5 per entry over 600 entries: a Bonferroni chance failure of 4e-3.
    """
    data = small["data"]
    start = {k: jnp.asarray(v) for k, v in mfi.spectral_init(**data).items()}
    nuts = pgm.fit(
        jax.random.key(30),
        mf.model,
        data=data,
        method="nuts",
        init_strategy=init_to_value(values=start),  # as Gibbs: avoid local modes
        num_warmup=500,
        num_samples=500,
        num_chains=2,
        progress_bar=False,
        checks=False,
    )
    means, errors = [], []
    for result in (nuts, fits["gibbs"]):
        loc = np.einsum(
            "cdki,cdkj->cdij",
            result.samples["user_factors"],
            result.samples["item_factors"],
        ).reshape(2, 500, -1)
        means.append(loc.mean((0, 1)))
        errors.append(loc.std((0, 1)) / np.sqrt(effective_sample_size(loc)))
    gap = np.abs(means[0] - means[1]) / np.hypot(*errors)
    assert gap.max() <= 4.5


# ------------------------------------------------------------------------ bad input

GOOD = {
    "user": np.array([0, 1, 2]),
    "item": np.array([0, 1, 0]),
    "rating": np.array([1.0, 2.0, 3.0]),
    "num_users": 3,
    "num_items": 2,
    "num_factors": 2,
}


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"user": np.array([0, 3, 2])}, ValueError, r"user must hold.*num_users=3"),
        ({"item": np.array([0, -1, 0])}, ValueError, r"item must hold.*num_items=2"),
        ({"user": np.array([0.0, 1.0, 2.0])}, TypeError, "user must be an integer"),
        ({"rating": np.array([1.0, np.nan, 3.0])}, ValueError, "rating must be finite"),
        ({"rating": np.array([1.0, 2.0])}, ValueError, "same length"),
        ({"num_factors": 0}, ValueError, r"num_factors must be an integer >= 1"),
        ({"num_users": 2.5}, ValueError, "num_users must be an integer"),
    ],
)
def test_bad_input_is_named(change, error, match):
    data = {**GOOD, **change}
    with pytest.raises(error, match=match):
        mfc.cavi(jax.random.key(0), **data)
    with pytest.raises(error, match=match):
        mfk.check_ratings(
            data["user"],
            data["item"],
            data["rating"],
            num_users=data["num_users"],
            num_items=data["num_items"],
            num_factors=data["num_factors"],
        )


def test_bad_input_through_fit_names_the_argument():
    with pytest.raises(ValueError, match=r"user must hold integer codes in \[0, num_"):
        pgm.fit(
            jax.random.key(0),
            mf.model,
            data={**GOOD, "user": np.array([0, 5, 1])},
            method="map",
        )
    with pytest.raises(ValueError, match=r"data\['rating'\] contains 1 NaN"):
        pgm.fit(
            jax.random.key(0),
            mf.model,
            data={**GOOD, "rating": np.array([1.0, np.nan, 3.0])},
            method="map",
        )
    with pytest.raises(ValueError, match="num_factors must be an integer >= 1"):
        pgm.fit(
            jax.random.key(0), mf.model, data={**GOOD, "num_factors": 0}, method="map"
        )


def test_bad_arguments_of_simulate_predict_and_conditionals():
    with pytest.raises(ValueError, match="num_ratings must be <= num_users"):
        mf.simulate(
            jax.random.key(0), num_users=2, num_items=2, num_factors=1, num_ratings=5
        )
    with pytest.raises(ValueError, match=r"shape \(num_factors, 2\)"):
        mf.simulate(
            jax.random.key(0),
            num_users=2,
            num_items=2,
            num_factors=1,
            num_ratings=3,
            user_factors=np.zeros((2, 1)),
        )
    with pytest.raises(TypeError, match="unknown argument"):
        mfg.gibbs_conditionals(bias=True)
    with pytest.raises(TypeError, match="unknown argument"):
        mfc.cavi(jax.random.key(0), **GOOD, subsample_size=2)
    draws = {
        "user_factors": np.zeros((1, 4, 2, 3)),
        "item_factors": np.zeros((1, 4, 2, 2)),
    }
    with pytest.raises(ValueError, match=r"item holds codes outside \[0, 2\)"):
        mfp.predict(jax.random.key(0), draws, [0, 1], [0, 2])
    with pytest.raises(ValueError, match="prob must lie in"):
        mfp.predict(jax.random.key(0), draws, [0], [0], prob=1.5)
    with pytest.raises(TypeError, match="posterior must be"):
        mfp.predict(jax.random.key(0), [1, 2], [0], [0])


@pytest.mark.slow
@pytest.mark.parametrize(
    "module", [mf, mfc, mfg, mfi, mfk, mfp], ids=lambda m: m.__name__.rsplit(".")[-1]
)
def test_docstring_examples_run(module):
    import doctest

    failures, _ = doctest.testmod(module, raise_on_error=False)
    assert failures == 0
