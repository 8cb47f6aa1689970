"""Tests for the Gaussian mixture zoo model and its reference algorithms.

Tolerances:

* exact identities run in float64 (``jax.enable_x64``) and use ``EXACT_RTOL =
  1e-12``, about 4500 float64 ulps: the compared log densities are sums of < 100
  terms, whose rounding stays near 1e-14, while any float32 step (1e-7) would fail;
* sampling checks assert ``|estimate - expected| <= Z * standard_error`` with
  ``Z = 4``: a two-sided normal tail of 6.3e-5 per compared statistic, so a test
  comparing m statistics fails by chance with probability below m * 6.3e-5
  (m <= 12 here, so below 1e-3);
* a deliberately wrong conditional must exceed the same bound, showing the check
  has power.
"""

import inspect
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import pytest
from numpyro import handlers
from numpyro.contrib.funsor import enum
from numpyro.contrib.funsor import log_density as enum_log_density
from numpyro.diagnostics import effective_sample_size
from numpyro.infer.util import log_density
from numpyro_pgm.models import gmm, gmm_cavi, gmm_em, gmm_gibbs, gmm_labels
from numpyro_pgm.models._gmm_common import (
    _first_coordinate_ordered,
    _SortedNormal,
)
from scipy import stats
from scipy.special import logsumexp

Z = 4.0
EXACT_RTOL = 1e-12

VARIANTS = {
    "known": {},
    "lkj": {"learn_covariance": True},
    "wishart": {"learn_covariance": True, "covariance_prior": "wishart"},
    "ordered": {"ordered": True},
}

SEPARATED_MU = np.array([[-6.0, 0.0], [6.0, 0.0], [0.0, 7.0]])
SEPARATED_PI = np.array([0.3, 0.3, 0.4])


def _latent_plates(trace):
    return {
        name: [frame.name for frame in site["cond_indep_stack"]]
        for name, site in trace.items()
        if site["type"] == "sample"
    }


def _max_zscore(estimate, expected, standard_error):
    estimate, expected = np.asarray(estimate), np.asarray(expected)
    return float(np.max(np.abs(estimate - expected) / np.asarray(standard_error)))


def _normal_moment_zscore(draws, mean, cov):
    """Largest z-score of the sample mean and covariance entries of iid draws.

    For Gaussian draws, Var(sample mean_i) = cov_ii / S and
    Var(sample cov_ij) ~= (cov_ii cov_jj + cov_ij^2) / S.
    """
    draws = np.asarray(draws, dtype=float)
    num_draws = draws.shape[0]
    sample_mean = draws.mean(0)
    centred = draws - sample_mean[None]
    sample_cov = np.einsum("s...i,s...j->...ij", centred, centred) / (num_draws - 1)
    var = np.diagonal(cov, axis1=-2, axis2=-1)
    cov_se = np.sqrt((var[..., :, None] * var[..., None, :] + cov**2) / num_draws)
    return max(
        _max_zscore(sample_mean, mean, np.sqrt(var / num_draws)),
        _max_zscore(sample_cov, cov, cov_se),
    )


def _draw(update, values, data, num_draws, seed):
    keys = jax.random.split(jax.random.key(seed), num_draws)
    return jax.vmap(lambda key: update(key, values, data))(keys)


# ----------------------------------------------------------------------------- model


def _check_trace_against_simulation(variant, trace, data):
    """Site names, shapes, plates and enumeration flags agree with simulate."""
    sites = {n: s for n, s in trace.items() if s["type"] == "sample"}
    assert set(sites) == set(data)
    for name, site in sites.items():
        assert site["value"].shape == data[name].shape, name
        assert len(gmm.DIMS[name]) == site["value"].ndim, name
        frames = site["cond_indep_stack"]
        assert site["value"].shape[: len(frames)] == tuple(f.size for f in frames)
    assert sites["x"]["is_observed"]
    assert sites["z"]["infer"] == {"enumerate": "parallel"}
    expected = {"pi": [], "z": ["point"], "x": ["point"]}
    expected["mu"] = [] if variant == "ordered" else ["component"]
    for name in ("obs_scale", "obs_corr_cholesky", "obs_precision"):
        if name in sites:
            expected[name] = ["component"]
    assert _latent_plates(trace) == expected
    assert data["x"].shape == (7, 2) and data["mu"].shape == (3, 2)
    if variant == "ordered":
        assert np.all(np.diff(np.asarray(data["mu"][:, 0])) > 0)


def _scipy_log_prior(variant, values, settings):
    pi, mu = np.asarray(values["pi"]), np.asarray(values["mu"])
    num_components, dim = mu.shape
    alpha = np.broadcast_to(settings["concentration"], (num_components,))
    total = stats.dirichlet.logpdf(pi, alpha)
    total += stats.norm.logpdf(
        mu, settings["prior_mean"], settings["prior_scale"]
    ).sum()
    if variant == "ordered":
        total += math.lgamma(num_components + 1)
    if variant == "lkj":
        total += stats.halfnorm.logpdf(
            np.asarray(values["obs_scale"]), scale=settings["obs_scale_prior"]
        ).sum()
        # LKJ(eta) on a 2x2 correlation: (rho + 1) / 2 ~ Beta(eta, eta); the
        # Cholesky factor's free entry is rho itself.
        rho = np.asarray(values["obs_corr_cholesky"])[:, 1, 0]
        eta = settings["lkj_concentration"]
        total += (stats.beta.logpdf((rho + 1) / 2, eta, eta) - np.log(2)).sum()
    if variant == "wishart":
        df = dim + 2.0
        scale = np.eye(dim) / (df * settings["obs_scale_prior"] ** 2)
        for precision in np.asarray(values["obs_precision"]):
            total += stats.wishart.logpdf(precision, df, scale)
    return total


def _component_covs(variant, values, obs_cov):
    num_components = values["mu"].shape[0]
    if variant == "lkj":
        tril = np.asarray(values["obs_scale"])[..., None] * np.asarray(
            values["obs_corr_cholesky"]
        )
        return tril @ np.swapaxes(tril, -1, -2)
    if variant == "wishart":
        return np.linalg.inv(np.asarray(values["obs_precision"]))
    return np.broadcast_to(obs_cov, (num_components, *obs_cov.shape))


SETTINGS = {
    "concentration": np.array([1.5, 2.0, 3.0]),
    "prior_mean": np.array([0.5, -1.0]),
    "prior_scale": np.array([3.0, 2.0]),
    "obs_scale_prior": 1.5,
    "lkj_concentration": 2.0,
}
OBS_COV = np.array([[1.0, 0.3], [0.3, 0.5]])


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_simulate_and_model_agree_and_the_log_joint_matches_scipy(variant):
    kwargs = {**VARIANTS[variant], **SETTINGS, "obs_cov": OBS_COV}
    with jax.enable_x64(True):
        data = gmm.simulate(
            jax.random.key(2), num_points=7, num_components=3, dim=2, **kwargs
        )
        params = {name: value for name, value in data.items() if name != "x"}
        log_joint, trace = log_density(
            gmm.model, (data["x"],), {"num_components": 3, **kwargs}, params
        )
        _check_trace_against_simulation(variant, trace, data)
        values = {name: np.asarray(value) for name, value in data.items()}
    z, x = values["z"], values["x"]
    covs = _component_covs(variant, values, OBS_COV)
    expected = _scipy_log_prior(variant, values, SETTINGS)
    expected += np.log(values["pi"][z]).sum()
    expected += sum(
        stats.multivariate_normal.logpdf(x[n], values["mu"][z[n]], covs[z[n]])
        for n in range(x.shape[0])
    )
    np.testing.assert_allclose(float(log_joint), expected, rtol=EXACT_RTOL)


@pytest.mark.parametrize("variant", ["known", "lkj"])
def test_enumerated_log_density_is_the_mixture_marginal(variant):
    """Enumerating z (as NUTS does) gives eq. (2.10): the Vindex gather is right."""
    kwargs = {**VARIANTS[variant], **SETTINGS, "obs_cov": OBS_COV}
    with jax.enable_x64(True):
        data = gmm.simulate(
            jax.random.key(3), num_points=8, num_components=3, dim=2, **kwargs
        )
        params = {n: v for n, v in data.items() if n not in ("x", "z")}
        model = enum(gmm.model, first_available_dim=-2)
        marginal, _ = enum_log_density(
            model, (data["x"],), {"num_components": 3, **kwargs}, params
        )
        values = {name: np.asarray(value) for name, value in data.items()}
    covs = _component_covs(variant, values, OBS_COV)
    per_point = np.stack(
        [
            np.log(values["pi"][k])
            + stats.multivariate_normal.logpdf(values["x"], values["mu"][k], covs[k])
            for k in range(3)
        ],
        axis=-1,
    )
    expected = _scipy_log_prior(variant, values, SETTINGS)
    expected += logsumexp(per_point, axis=-1).sum()
    np.testing.assert_allclose(float(marginal), expected, rtol=EXACT_RTOL)


def test_ordered_transform_is_a_bijection_with_the_right_jacobian():
    transform = numpyro.distributions.transforms.biject_to(_first_coordinate_ordered)
    with jax.enable_x64(True):
        unconstrained = jax.random.normal(jax.random.key(4), (3, 2))
        ordered = transform(unconstrained)
        assert bool(_first_coordinate_ordered(ordered))
        np.testing.assert_allclose(
            transform.inv(ordered), unconstrained, rtol=EXACT_RTOL
        )
        jacobian = jax.jacobian(lambda u: transform(u).ravel())(unconstrained)
        _, log_det = np.linalg.slogdet(np.asarray(jacobian).reshape(6, 6))
        np.testing.assert_allclose(
            transform.log_abs_det_jacobian(unconstrained, ordered),
            log_det,
            rtol=EXACT_RTOL,
        )
        sorted_normal = _SortedNormal(jnp.zeros(2), jnp.ones(2), 3)
        draws = sorted_normal.sample(jax.random.key(5), (100,))
        assert bool(jnp.all(_first_coordinate_ordered(draws)))


def test_responsibilities_match_scipy_for_batched_draws():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 2))
    pi = rng.dirichlet(np.ones(3), size=(2, 4))
    mu = rng.normal(size=(2, 4, 3, 2))
    covs = np.stack([OBS_COV, 2 * np.eye(2), 0.5 * OBS_COV])
    with jax.enable_x64(True):
        shared = np.asarray(gmm.responsibilities(x, pi, mu, obs_cov=OBS_COV))
        per_component = np.asarray(gmm.responsibilities(x, pi, mu, obs_cov=covs))
    for result, cov in ((shared, [OBS_COV] * 3), (per_component, covs)):
        assert result.shape == (2, 4, 5, 3)
        for chain, draw in np.ndindex(2, 4):
            joint = np.stack(
                [
                    pi[chain, draw, k]
                    * stats.multivariate_normal.pdf(x, mu[chain, draw, k], cov[k])
                    for k in range(3)
                ],
                axis=-1,
            )
            expected = joint / joint.sum(-1, keepdims=True)
            np.testing.assert_allclose(result[chain, draw], expected, rtol=EXACT_RTOL)


def test_guide_has_the_model_signature_and_covers_its_continuous_sites():
    assert inspect.signature(gmm.mean_field_guide) == inspect.signature(gmm.model)
    # float64 and the shapes of the log-joint test, to reuse its compiled kernels.
    with jax.enable_x64(True):
        x = gmm.simulate(jax.random.key(6), num_points=7, num_components=3, dim=2)["x"]
        for kwargs in VARIANTS.values():
            traces = [
                handlers.trace(handlers.seed(function, 0)).get_trace(
                    x, num_components=3, **kwargs
                )
                for function in (gmm.model, gmm.mean_field_guide)
            ]
            model_sites, guide_sites = (
                {n: s for n, s in trace.items() if s["type"] == "sample"}
                for trace in traces
            )
            latent = {n for n, s in model_sites.items() if not s["is_observed"]}
            assert set(guide_sites) == latent - {"z"}
            for name, site in guide_sites.items():
                assert site["value"].shape == model_sites[name]["value"].shape


def test_guide_gives_a_finite_differentiable_traceenum_elbo():
    x = gmm.simulate(jax.random.key(7), num_points=7, num_components=3, dim=2)["x"]
    guide_trace = handlers.trace(handlers.seed(gmm.mean_field_guide, 0)).get_trace(
        x, num_components=3
    )
    params = {n: s["value"] for n, s in guide_trace.items() if s["type"] == "param"}
    assert set(params) == {"pi_concentration", "mu_loc", "mu_scale"}
    elbo = numpyro.infer.TraceEnum_ELBO(max_plate_nesting=1)

    def loss(params):
        return elbo.loss(
            jax.random.key(8),
            params,
            gmm.model,
            gmm.mean_field_guide,
            x,
            num_components=3,
        )

    value, grads = jax.jit(jax.value_and_grad(loss))(params)
    assert np.isfinite(float(value))
    assert all(np.all(np.isfinite(np.asarray(g))) for g in grads.values())


@pytest.mark.slow
def test_mean_field_svi_recovers_separated_means():
    data = _separated_data(9, num_points=150)
    svi = numpyro.infer.SVI(
        gmm.model,
        gmm.mean_field_guide,
        numpyro.optim.Adam(0.05),
        numpyro.infer.TraceEnum_ELBO(max_plate_nesting=1),
    )
    result = svi.run(
        jax.random.key(10), 2000, data["x"], num_components=3, progress_bar=False
    )
    order = _match(result.params["mu_loc"], SEPARATED_MU)
    counts = SEPARATED_PI * 150
    means = np.asarray(result.params["mu_loc"])[order]
    assert _max_zscore(means, SEPARATED_MU, 1 / np.sqrt(counts[:, None])) < Z


BAD_INPUTS = [
    ({"x": np.array([[0.0, np.nan], [1.0, 2.0]])}, "x", "nan"),
    ({"x": np.array([[0.0, 1.0], [np.inf, 2.0]])}, "x", "inf"),
    ({"x": np.zeros(5)}, "x", r"\(5,\)"),
    ({"num_components": 0}, "num_components", "0"),
    ({"num_components": 6}, "num_components", "6"),
    ({"concentration": -1.0}, "concentration", "-1.0"),
    ({"prior_scale": 0.0}, "prior_scale", "0.0"),
    ({"obs_scale": -2.0}, "obs_scale", "-2.0"),
    ({"concentration": np.ones(3)}, "concentration", r"\(3,\)"),
    # d of the prior on mu (Sigma0 = diag(prior_scale**2)) against the 2-D data
    ({"prior_mean": np.zeros(3)}, "prior_mean", r"\(3,\)"),
    ({"prior_scale": np.ones(3)}, "prior_scale", r"\(3,\)"),
    # Sigma0 = diag(prior_scale**2) must be positive definite: no zero scale
    ({"prior_scale": np.array([1.0, 0.0])}, "prior_scale", r"\[1\., 0\.\]"),
    ({"obs_cov": np.array([[1.0, 2.0], [2.0, 1.0]])}, "obs_cov", "positive definite"),
    ({"obs_cov": np.eye(3)}, "obs_cov", r"\(3, 3\)"),
]


@pytest.mark.parametrize(("bad", "name", "value"), BAD_INPUTS)
def test_bad_input_raises_a_helpful_value_error(bad, name, value):
    kwargs = {"x": np.zeros((5, 2)), "num_components": 2, **bad}
    x = kwargs.pop("x")
    entry_points = [
        lambda: handlers.seed(gmm.model, 0)(x, **kwargs),
        lambda: handlers.seed(gmm.mean_field_guide, 0)(x, **kwargs),
        lambda: gmm_cavi.cavi(jax.random.key(0), x, **kwargs),
        lambda: gmm_gibbs.gibbs(jax.random.key(0), x, num_samples=2, **kwargs),
    ]
    if name in ("x", "num_components"):
        entry_points.append(lambda: gmm_em.em(jax.random.key(0), x, **kwargs))
    for call in entry_points:
        with pytest.raises(ValueError) as error:
            call()
        message = str(error.value)
        assert name in message
        assert re.search(value, message, flags=re.IGNORECASE), message
        assert re.search(r"\b(Pass|Drop|Reshape|Use)\b", message), message


@pytest.mark.parametrize(
    ("prior", "name", "value"),
    [
        ({"mean": np.zeros(3)}, "prior.mean", r"\(3,\)"),
        ({"concentration": np.full(3, 2.0)}, "prior.concentration", r"\(3,\)"),
        ({"scale": np.eye(3)}, "prior.scale", r"\(2, 2\)"),
        ({"scale": -np.eye(2)}, "prior.scale", "positive definite"),
    ],
)
def test_em_prior_of_the_wrong_dimension_raises_a_helpful_value_error(
    prior, name, value
):
    with pytest.raises(ValueError) as error:
        gmm_em.em(
            jax.random.key(0),
            np.zeros((5, 2)),
            num_components=2,
            prior=gmm_em.EMPrior(**prior),
        )
    message = str(error.value)
    assert name in message
    assert re.search(value, message), message
    assert "Pass" in message


# --------------------------------------------------------------------------- EM


def _overlapping_data(seed, num_points=200):
    return gmm.simulate(
        jax.random.key(seed),
        num_points=num_points,
        num_components=3,
        dim=2,
        mu=np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 1.5]]),
        pi=np.array([0.3, 0.3, 0.4]),
    )["x"]


def _assert_non_decreasing(history, num_points):
    """Allow the rounding of a float64 sum of num_points terms, nothing more."""
    history = np.asarray(history)
    slack = num_points * np.finfo(np.float64).eps * np.abs(history).max()
    assert np.all(np.diff(history) >= -slack), np.diff(history).min()


@pytest.mark.parametrize(
    "options",
    [{"covariance_floor": 0.0}, {"covariance_floor": 0.3}, {"prior": "default"}],
    ids=["ml", "floor", "map"],
)
def test_em_objective_is_non_decreasing(options):
    if options.get("prior") == "default":
        options = {"prior": gmm_em.EMPrior(concentration=2.0)}
    with jax.enable_x64(True):
        x = _overlapping_data(10)
        result = gmm_em.em(
            jax.random.key(11),
            x,
            num_components=3,
            num_iterations=60,
            tol=0.0,
            **options,
        )
    assert result.num_iterations == 60 and result.objective.shape == (61,)
    _assert_non_decreasing(result.objective, x.shape[0])
    assert float(result.objective[-1] - result.objective[0]) > 1.0
    if "covariance_floor" in options:
        np.testing.assert_array_equal(result.objective, result.log_likelihood)
        eigenvalues = np.linalg.eigvalsh(np.asarray(result.params.covs))
        assert eigenvalues.min() >= options["covariance_floor"] * (1 - 1e-12)


def _separated_data(seed, num_points=600):
    return gmm.simulate(
        jax.random.key(seed),
        num_points=num_points,
        num_components=3,
        dim=2,
        mu=SEPARATED_MU,
        pi=SEPARATED_PI,
    )


def _match(estimate, truth):
    """Order estimated components like the true ones (Hungarian on the means)."""
    return gmm_labels.relabel(np.asarray(estimate)[None], reference=truth).permutations[
        0
    ]


def test_em_recovers_well_separated_truth():
    data = _separated_data(12)
    result = gmm_em.em(jax.random.key(13), data["x"], num_components=3)
    assert result.converged
    order = _match(result.params.means, SEPARATED_MU)
    means = np.asarray(result.params.means)[order]
    weights = np.asarray(result.params.weights)[order]
    counts = SEPARATED_PI * 600
    # The ML mean of a recovered cluster is its sample mean: sd 1 / sqrt(N_k).
    assert _max_zscore(means, SEPARATED_MU, 1 / np.sqrt(counts[:, None])) < Z
    weight_se = np.sqrt(SEPARATED_PI * (1 - SEPARATED_PI) / 600)
    assert _max_zscore(weights, SEPARATED_PI, weight_se) < Z


def test_em_matches_scikit_learn_from_the_same_start():
    mixture = pytest.importorskip("sklearn.mixture")
    exceptions = pytest.importorskip("sklearn.exceptions")
    with jax.enable_x64(True):
        x = _overlapping_data(14)
        init = gmm_em.MixtureParams(
            np.full(3, 1 / 3),
            np.array([[-0.5, -0.5], [0.5, 0.5], [0.0, 1.0]]),
            np.broadcast_to(np.eye(2), (3, 2, 2)),
        )
        result = gmm_em.em(
            jax.random.key(0),
            x,
            num_components=3,
            init=init,
            num_iterations=60,
            tol=0.0,
            covariance_floor=0.0,
        )
    reference = mixture.GaussianMixture(
        3,
        covariance_type="full",
        tol=0.0,
        reg_covar=0.0,
        max_iter=60,
        weights_init=init.weights,
        means_init=init.means,
        precisions_init=np.linalg.inv(init.covs),
        init_params="random_from_data",
        random_state=0,
    )
    with pytest.warns(exceptions.ConvergenceWarning):
        reference.fit(np.asarray(x))
    # Same algorithm, same start, same number of steps, both in float64: they agree
    # to rounding (EM steps contract near the optimum, so it does not build up).
    rtol = EXACT_RTOL
    np.testing.assert_allclose(result.params.weights, reference.weights_, rtol=rtol)
    np.testing.assert_allclose(result.params.means, reference.means_, rtol=rtol)
    np.testing.assert_allclose(result.params.covs, reference.covariances_, rtol=rtol)
    np.testing.assert_allclose(
        float(result.log_likelihood[-1]) / x.shape[0],
        reference.score(np.asarray(x)),
        rtol=EXACT_RTOL,
    )


def _collapse_problem():
    """Twenty points near 0 and one outlier that a component starts on."""
    x = np.concatenate([np.linspace(-2.0, 2.0, 20), [40.0]])[:, None]
    init = gmm_em.MixtureParams(
        np.array([0.5, 0.5]), np.array([[0.0], [40.0]]), np.ones((2, 1, 1))
    )
    return x, init


def test_covariance_floor_prevents_collapse_onto_one_point():
    x, init = _collapse_problem()
    with jax.enable_x64(True):
        fits = {
            name: gmm_em.em(
                jax.random.key(0), x, num_components=2, init=init, **options
            )
            for name, options in {
                "none": {"covariance_floor": 0.0},
                "floor": {"covariance_floor": 1e-2},
                "map": {"covariance_floor": 0.0, "prior": gmm_em.EMPrior()},
            }.items()
        }
        variances = {
            name: float(fit.params.covs[1, 0, 0]) for name, fit in fits.items()
        }
        log_likelihoods = {
            name: float(fit.log_likelihood[-1]) for name, fit in fits.items()
        }
    # Without a remedy the outlier's component shrinks onto it (Remark 2.10): its
    # variance is rounding noise and the likelihood is inflated by the spike.
    assert variances["none"] < 1e-20
    assert log_likelihoods["none"] > log_likelihoods["floor"] + 10
    np.testing.assert_allclose(variances["floor"], 1e-2, rtol=1e-12)
    assert variances["map"] > 0.1
    for fit in fits.values():
        assert np.all(np.isfinite(np.asarray(fit.objective)))


def test_non_finite_objective_warns_with_the_remedy():
    x, init = _collapse_problem()
    singular = init._replace(covs=np.zeros((2, 1, 1)))
    with pytest.warns(RuntimeWarning, match="covariance_floor"):
        result = gmm_em.em(
            jax.random.key(0), x, num_components=2, init=singular, covariance_floor=0.0
        )
    assert not result.converged and not np.isfinite(float(result.objective[-1]))


def test_map_objective_adds_the_scipy_log_prior():
    prior = gmm_em.EMPrior(
        concentration=np.array([2.0, 3.0, 1.5]),
        mean=np.array([0.2, -0.1]),
        mean_precision=0.5,
        df=4.0,
        scale=np.array([[1.0, 0.2], [0.2, 0.8]]),
    )
    with jax.enable_x64(True):
        x = _overlapping_data(15)
        result = gmm_em.em(
            jax.random.key(16),
            x,
            num_components=3,
            num_iterations=60,
            tol=0.0,
            prior=prior,
        )
    weights, means, covs = (np.asarray(v) for v in result.params)
    expected = stats.dirichlet.logpdf(weights, prior.concentration)
    for mean, cov in zip(means, covs, strict=True):
        expected += stats.invwishart.logpdf(cov, prior.df, prior.scale)
        expected += stats.multivariate_normal.logpdf(
            mean, prior.mean, cov / prior.mean_precision
        )
    log_prior = float(result.objective[-1]) - float(result.log_likelihood[-1])
    np.testing.assert_allclose(log_prior, expected, rtol=EXACT_RTOL)


# ------------------------------------------------------------------------- CAVI


def test_cavi_elbo_is_non_decreasing_and_matches_a_monte_carlo_elbo():
    with jax.enable_x64(True):
        x = np.asarray(_overlapping_data(20, num_points=80))
        fit = gmm_cavi.cavi(
            jax.random.key(21),
            x,
            num_components=3,
            num_iterations=40,
            tol=0.0,
            prior_scale=2.0,
        )
        fit = fit._replace(**{k: np.asarray(v) for k, v in fit._asdict().items()})
    _assert_non_decreasing(fit.elbo, x.shape[0])
    assert fit.elbo.shape == (40,)
    # Monte Carlo ELBO, E_q[log p(x, z, pi, mu) - log q(z, pi, mu)], with scipy
    # densities (Sigma = I, prior N(0, 2^2 I), alpha = 1).
    rng = np.random.default_rng(22)
    num_draws, num_points = 4000, x.shape[0]
    pi = rng.dirichlet(fit.pi_concentration, size=num_draws)
    q_mu = [stats.multivariate_normal(m, c) for m, c in zip(*fit[1:3], strict=True)]
    mu = np.stack([q.rvs(num_draws, random_state=rng) for q in q_mu], axis=1)
    uniform = rng.random((num_draws, num_points, 1))
    z = (uniform > fit.z_probs.cumsum(-1)[None]).sum(-1)
    pi_z = np.take_along_axis(pi, z, axis=-1)
    mu_z = np.take_along_axis(mu, z[..., None], axis=1)
    log_joint = (
        stats.dirichlet.logpdf(pi.T, np.ones(3))
        + stats.norm.logpdf(mu, 0.0, 2.0).sum((1, 2))
        + np.log(pi_z).sum(-1)
        + stats.norm.logpdf(x[None], mu_z, 1.0).sum((1, 2))
    )
    log_q = (
        stats.dirichlet.logpdf(pi.T, fit.pi_concentration)
        + sum(q.logpdf(mu[:, k]) for k, q in enumerate(q_mu))
        + np.log(fit.z_probs[np.arange(num_points), z]).sum(-1)
    )
    ratios = log_joint - log_q
    standard_error = ratios.std(ddof=1) / np.sqrt(num_draws)
    assert abs(ratios.mean() - fit.elbo[-1]) < Z * standard_error


def test_cavi_with_wishart_precisions_matches_a_monte_carlo_elbo():
    """The Wishart factor's updates and its closed-form KL (mean-field ELBO)."""
    options = {
        "learn_covariance": True,
        "covariance_prior": "wishart",
        "obs_scale_prior": 0.8,
        "prior_scale": 2.0,
    }
    with jax.enable_x64(True):
        x = np.asarray(_overlapping_data(20, num_points=80))
        fit = gmm_cavi.cavi(
            jax.random.key(21), x, num_components=3, num_iterations=40, tol=0.0,
            **options,
        )  # fmt: skip
        fit = fit._replace(**{k: np.asarray(v) for k, v in fit._asdict().items()})
    _assert_non_decreasing(fit.elbo, x.shape[0])
    rng = np.random.default_rng(22)
    num_draws, num_points = 4000, x.shape[0]
    df0 = 4.0  # dim + 2; prior Wishart(df0, rate df0 * 0.8^2 I)
    prior_precision = stats.wishart(df0, np.eye(2) / (df0 * 0.8**2))
    q_mu = [stats.multivariate_normal(m, c) for m, c in zip(*fit[1:3], strict=True)]
    q_precision = [
        stats.wishart(df, scale)
        for df, scale in zip(fit.precision_df, fit.precision_scale, strict=True)
    ]
    pi = rng.dirichlet(fit.pi_concentration, size=num_draws)
    mu = np.stack([q.rvs(num_draws, random_state=rng) for q in q_mu], axis=1)
    precision = np.stack(
        [q.rvs(num_draws, random_state=rng) for q in q_precision], axis=1
    )
    uniform = rng.random((num_draws, num_points, 1))
    z = (uniform > fit.z_probs.cumsum(-1)[None]).sum(-1)
    diff = x[None] - np.take_along_axis(mu, z[..., None], axis=1)
    precision_z = precision[np.arange(num_draws)[:, None], z]
    quadratic = np.einsum("sni,snij,snj->sn", diff, precision_z, diff)
    log_lik = 0.5 * np.linalg.slogdet(precision_z)[1] - np.log(2 * np.pi)
    log_joint = (
        stats.dirichlet.logpdf(pi.T, np.ones(3))
        + stats.norm.logpdf(mu, 0.0, 2.0).sum((1, 2))
        + sum(
            prior_precision.logpdf(np.moveaxis(precision[:, k], 0, -1))
            for k in range(3)
        )
        + np.log(np.take_along_axis(pi, z, axis=-1)).sum(-1)
        + (log_lik - 0.5 * quadratic).sum(-1)
    )
    log_q = (
        stats.dirichlet.logpdf(pi.T, fit.pi_concentration)
        + sum(q.logpdf(mu[:, k]) for k, q in enumerate(q_mu))
        + sum(
            q.logpdf(np.moveaxis(precision[:, k], 0, -1))
            for k, q in enumerate(q_precision)
        )
        + np.log(fit.z_probs[np.arange(num_points), z]).sum(-1)
    )
    ratios = log_joint - log_q
    standard_error = ratios.std(ddof=1) / np.sqrt(num_draws)
    assert abs(ratios.mean() - fit.elbo[-1]) < Z * standard_error


def test_cavi_means_are_near_the_truth():
    data = _separated_data(23, num_points=300)
    fit = gmm_cavi.cavi(jax.random.key(24), data["x"], num_components=3)
    assert fit.converged
    order = _match(fit.mu_mean, SEPARATED_MU)
    counts = SEPARATED_PI * 300
    # q(mu_k) concentrates on the cluster's sample mean: sd ~ 1 / sqrt(N_k).
    means = np.asarray(fit.mu_mean)[order]
    assert _max_zscore(means, SEPARATED_MU, 1 / np.sqrt(counts[:, None])) < Z


# ------------------------------------------------------------------------ Gibbs

CONDITIONAL_DATA = {
    "x": np.array(
        [[2.5, 3.0], [3.5, 2.0], [3.0, 4.0], [-2.0, 1.0], [-3.0, 0.5], [-2.5, 2.0]]
    ),
    "num_components": 2,
    "prior_mean": np.array([0.0, 0.5]),
    "prior_scale": np.array([1.0, 1.5]),
    "obs_cov": OBS_COV,
    "concentration": np.array([3.0, 2.0]),
}
CONDITIONAL_VALUES = {
    "pi": np.array([0.7, 0.3]),
    "mu": np.array([[3.0, 3.0], [-2.5, 1.0]]),
    "z": np.array([0, 0, 0, 1, 1, 0]),
}
NUM_DRAWS = 4000


def _mu_posterior(data, values):
    """Normal posterior of each mean in covariance (Kalman-gain) form."""
    x, z = data["x"], values["z"]
    prior_cov = np.diag(data["prior_scale"] ** 2)
    means, covs = [], []
    for k in range(data["num_components"]):
        members = x[z == k]
        count = members.shape[0]
        gain = prior_cov @ np.linalg.inv(prior_cov + data["obs_cov"] / count)
        means.append(data["prior_mean"] + gain @ (members.mean(0) - data["prior_mean"]))
        covs.append(prior_cov - gain @ prior_cov)
    return np.array(means), np.array(covs)


def _update_mu_ignoring_the_prior(rng_key, values, data):
    z = values["z"]
    means = jnp.stack([jnp.asarray(data["x"])[z == k].mean(0) for k in range(2)])
    counts = jnp.array([(z == k).sum() for k in range(2)])
    chol = jnp.linalg.cholesky(jnp.asarray(data["obs_cov"]))
    noise = jax.random.normal(rng_key, (2, 2))
    return {"mu": means + (noise @ chol.T) / jnp.sqrt(counts)[:, None]}


def test_update_mu_matches_the_normal_posterior_and_a_wrong_one_fails():
    mean, cov = _mu_posterior(CONDITIONAL_DATA, CONDITIONAL_VALUES)
    draws = _draw(
        gmm_gibbs.update_mu, CONDITIONAL_VALUES, CONDITIONAL_DATA, NUM_DRAWS, 30
    )
    assert _normal_moment_zscore(draws["mu"], mean, cov) < Z
    wrong = _draw(
        _update_mu_ignoring_the_prior,
        CONDITIONAL_VALUES,
        CONDITIONAL_DATA,
        NUM_DRAWS,
        31,
    )
    assert _normal_moment_zscore(wrong["mu"], mean, cov) > Z


def _dirichlet_zscore(draws, alpha):
    """z-scores of the sample mean and variance of each Beta marginal but the last."""
    draws = np.asarray(draws, dtype=float)[:, :-1]
    marginal = stats.beta(alpha[:-1], alpha.sum() - alpha[:-1])
    mean, var, _, excess_kurtosis = marginal.stats(moments="mvsk")
    num_draws = draws.shape[0]
    var_se = np.sqrt((excess_kurtosis + 2) * var**2 / num_draws)
    return max(
        _max_zscore(draws.mean(0), mean, np.sqrt(var / num_draws)),
        _max_zscore(draws.var(0, ddof=1), var, var_se),
    )


def test_update_pi_matches_the_dirichlet_posterior_and_a_wrong_one_fails():
    counts = np.bincount(CONDITIONAL_VALUES["z"], minlength=2)
    alpha = CONDITIONAL_DATA["concentration"] + counts
    draws = _draw(
        gmm_gibbs.update_pi, CONDITIONAL_VALUES, CONDITIONAL_DATA, NUM_DRAWS, 32
    )
    assert _dirichlet_zscore(draws["pi"], alpha) < Z

    def forgets_the_prior(rng_key, values, data):
        return {"pi": jax.random.dirichlet(rng_key, 1.0 + jnp.asarray(counts))}

    wrong = _draw(
        forgets_the_prior, CONDITIONAL_VALUES, CONDITIONAL_DATA, NUM_DRAWS, 33
    )
    assert _dirichlet_zscore(wrong["pi"], alpha) > Z


def test_update_z_matches_the_responsibilities_and_a_wrong_one_fails():
    values = {**CONDITIONAL_VALUES, "mu": np.array([[1.0, 1.0], [-1.0, 1.0]])}
    x = CONDITIONAL_DATA["x"] / 3
    data = {**CONDITIONAL_DATA, "x": x}
    joint = np.stack(
        [
            values["pi"][k] * stats.multivariate_normal.pdf(x, values["mu"][k], OBS_COV)
            for k in range(2)
        ],
        axis=-1,
    )
    probability = (joint / joint.sum(-1, keepdims=True))[:, 0]
    standard_error = np.sqrt(probability * (1 - probability) / NUM_DRAWS)

    def frequency(update, seed):
        draws = _draw(update, values, data, NUM_DRAWS, seed)["z"]
        return (np.asarray(draws) == 0).mean(0)

    assert (
        _max_zscore(frequency(gmm_gibbs.update_z, 34), probability, standard_error) < Z
    )

    def ignores_the_weights(rng_key, values, data):
        return gmm_gibbs.update_z(rng_key, {**values, "pi": jnp.full(2, 0.5)}, data)

    wrong = frequency(ignores_the_weights, 35)
    assert _max_zscore(wrong, probability, standard_error) > Z


def test_update_obs_precision_matches_the_wishart_posterior_and_a_wrong_one_fails():
    data = {
        **CONDITIONAL_DATA,
        "learn_covariance": True,
        "covariance_prior": "wishart",
        "obs_scale_prior": 0.8,
    }
    values = CONDITIONAL_VALUES
    x, z, mu = data["x"], values["z"], values["mu"]
    df0 = 4.0
    means, standard_errors = [], []
    for k in range(2):
        diff = x[z == k] - mu[k]
        rate = np.eye(2) * df0 * 0.8**2 + diff.T @ diff
        df, scale = df0 + diff.shape[0], np.linalg.inv(rate)
        means.append(df * scale)
        variance = df * (scale**2 + np.outer(np.diag(scale), np.diag(scale)))
        standard_errors.append(np.sqrt(variance / NUM_DRAWS))
    means, standard_errors = np.array(means), np.array(standard_errors)
    draws = _draw(gmm_gibbs.update_obs_precision, values, data, NUM_DRAWS, 36)
    estimate = np.asarray(draws["obs_precision"]).mean(0)
    assert _max_zscore(estimate, means, standard_errors) < Z

    def forgets_the_prior_rate(rng_key, values, data):
        return gmm_gibbs.update_obs_precision(
            rng_key, values, {**data, "obs_scale_prior": 1e-3}
        )

    wrong = _draw(forgets_the_prior_rate, values, data, NUM_DRAWS, 37)
    wrong_estimate = np.asarray(wrong["obs_precision"]).mean(0)
    assert _max_zscore(wrong_estimate, means, standard_errors) > Z


def test_gibbs_conditionals_refuse_non_conjugate_settings():
    assert list(gmm_gibbs.gibbs_conditionals()) == ["z", "pi", "mu"]
    with pytest.raises(ValueError, match="ordered"):
        gmm_gibbs.gibbs_conditionals(ordered=True)
    with pytest.raises(ValueError, match="wishart"):
        gmm_gibbs.gibbs_conditionals(learn_covariance=True)


def test_standalone_gibbs_recovers_the_means():
    truth = np.array([[-4.0, 0.0], [4.0, 0.0]])
    data = gmm.simulate(
        jax.random.key(40),
        num_points=40,
        num_components=2,
        dim=2,
        mu=truth,
        pi=np.array([0.5, 0.5]),
    )
    x, z = np.asarray(data["x"]), np.asarray(data["z"])
    # Precondition: the clusters are so far apart that z is known a posteriori.
    gamma = np.asarray(gmm.responsibilities(x, np.array([0.5, 0.5]), truth))
    assert gamma[np.arange(40), z].min() > 1 - 1e-6
    draws = gmm_gibbs.gibbs(
        jax.random.key(41),
        x,
        num_components=2,
        num_samples=500,
        num_warmup=50,
        num_chains=2,
    )
    assert draws["mu"].shape == (2, 500, 2, 2) and draws["z"].shape == (2, 500, 40)
    agreement = gmm_labels.label_agreement(np.asarray(draws["mu"]))
    assert np.all(agreement.switch_fraction == 0)
    relabelled = gmm_labels.relabel(np.asarray(draws["mu"]), reference=truth).mu
    model_defaults = {
        "num_components": 2,
        "prior_mean": np.zeros(2),
        "prior_scale": np.full(2, 10.0),
        "obs_cov": np.eye(2),
        "x": x,
    }
    posterior_mean, posterior_cov = _mu_posterior(model_defaults, {"z": z})
    ess = effective_sample_size(relabelled.reshape(2, 500, 4)).reshape(2, 2)
    mcse = relabelled.reshape(-1, 2, 2).std(0) / np.sqrt(ess)
    assert _max_zscore(relabelled.mean((0, 1)), posterior_mean, mcse) < Z
    # And the posterior covers the truth: |mean - truth| <= Z posterior sd.
    posterior_sd = np.sqrt(np.diagonal(posterior_cov, axis1=-2, axis2=-1))
    assert _max_zscore(relabelled.mean((0, 1)), truth, posterior_sd) < Z


# ----------------------------------------------------------------------- labels


def test_relabel_undoes_planted_permutations_and_chains_are_compared():
    rng = np.random.default_rng(50)
    truth = np.array([[0.0, 0.0], [5.0, 1.0], [-3.0, 4.0]])
    draws = truth + 0.3 * rng.normal(size=(2, 200, 3, 2))
    planted = np.array([rng.permutation(3) for _ in range(400)]).reshape(2, 200, 3)
    switched = np.take_along_axis(draws, planted[..., None], axis=-2)
    result = gmm_labels.relabel(switched)
    # Up to one global relabelling, every draw is back in the planted order.
    global_order = _match(result.reference, truth)
    np.testing.assert_allclose(result.mu[..., global_order, :], draws)
    pi = rng.dirichlet(np.ones(3), size=(2, 200))
    switched_pi = np.take_along_axis(pi, planted, axis=-1)
    np.testing.assert_allclose(
        gmm_labels.apply_permutations(switched_pi, result.permutations)[
            ..., global_order
        ],
        pi,
    )
    stable = np.stack([draws[0], draws[1][:, [2, 0, 1]]])
    report = gmm_labels.label_agreement(stable)
    assert not report.chains_agree and np.all(report.switch_fraction == 0)
    aligned = np.stack(
        [
            gmm_labels.apply_permutations(
                stable[c],
                np.broadcast_to(report.chain_permutations[c], (200, 3)),
                axis=-2,
            )
            for c in range(2)
        ]
    )
    assert gmm_labels.label_agreement(aligned).chains_agree
    flip = stable.copy()
    flip[0, :50] = flip[0, :50][:, [1, 0, 2]]
    assert gmm_labels.label_agreement(flip).switch_fraction[0] == pytest.approx(0.25)
