"""Observed sites' support checks: hoisted in the samplers, checked at the boundary."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro import handlers
from numpyro.infer.util import initialize_model, log_density

import numpyro_pgm as pgm
from numpyro_pgm.inference._inspect import enumerated
from numpyro_pgm.inference._support_checks import (
    _without_validation,
    hoist_observed_checks,
)

RNG = np.random.default_rng(0)
Y_REAL = RNG.normal(1.0, 2.0, 40).astype(np.float32)
Y_COUNTS = RNG.poisson(3.0, 40).astype(np.float32)


def normal_model(y=None):
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(2.0))
    with numpyro.plate("n", 40):
        numpyro.sample("y", dist.Normal(mu, sigma), obs=y)


def mixture_model(y=None):
    w = numpyro.sample("w", dist.Dirichlet(jnp.ones(3)))
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0).expand([3]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(2.0).expand([3]).to_event(1))
    with numpyro.plate("n", 40):
        numpyro.sample(
            "y",
            dist.MixtureSameFamily(dist.Categorical(w), dist.Normal(mu, sigma)),
            obs=y,
        )


def enumerated_mixture_model(y=None):
    w = numpyro.sample("w", dist.Dirichlet(jnp.ones(3)))
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0).expand([3]).to_event(1))
    with numpyro.plate("n", 40):
        z = numpyro.sample("z", dist.Categorical(w))
        numpyro.sample("y", dist.Normal(mu[z], 1.0), obs=y)


def vector_model(y=None):
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0).expand([4]).to_event(1))
    numpyro.sample("y", dist.Normal(mu, 1.0).expand([10, 4]).to_event(2), obs=y)


def masked_poisson_model(y=None, keep=None):
    rate = numpyro.sample("rate", dist.Gamma(2.0, 1.0))
    with numpyro.plate("n", 40), handlers.mask(mask=keep):
        numpyro.sample("y", dist.Poisson(rate), obs=y)


def uniform_scale_model(y=None):
    theta = numpyro.sample("theta", dist.Exponential(0.2))
    with numpyro.plate("n", y.shape[0]):
        numpyro.sample("y", dist.Uniform(0.0, theta), obs=y)


KEEP = np.arange(40) % 3 != 0
CASES = {
    "normal": (normal_model, {"y": Y_REAL}),
    "mixture": (mixture_model, {"y": Y_REAL}),
    "enumerated-mixture": (
        enumerated(enumerated_mixture_model, ("z",)),
        {"y": Y_REAL},
    ),
    "independent": (vector_model, {"y": Y_REAL.reshape(10, 4)}),
    "masked": (masked_poisson_model, {"y": Y_COUNTS, "keep": KEEP}),
    "parameter-dependent-support": (
        uniform_scale_model,
        {"y": np.abs(Y_REAL)},
    ),
}


def _potentials(model, data, points=500):
    """Potential energy and gradient of model and hoisted model at random points."""
    results = []
    data = {k: jnp.asarray(v) for k, v in data.items()}
    for candidate in (model, hoist_observed_checks(model)):
        info = initialize_model(
            jax.random.key(0), candidate, model_kwargs=data, dynamic_args=True
        )
        z = jax.tree.map(
            lambda x: (
                x + 2.0 * jax.random.normal(jax.random.key(1), (points, *jnp.shape(x)))
            ),
            info.param_info.z,
        )
        potential = info.potential_fn

        def value_and_grad(z, data, potential=potential):
            return jax.value_and_grad(potential(**data))(z)

        results.append(jax.jit(jax.vmap(value_and_grad, (0, None)))(z, data))
    return results


@pytest.mark.parametrize("case", sorted(CASES))
# NumPyro's own (eager) initialisation of Uniform(0, theta) warns at theta < max(y).
@pytest.mark.filterwarnings("ignore:Out-of-support values provided")
def test_hoisted_checks_leave_the_potential_and_its_gradient_unchanged(case):
    model, data = CASES[case]
    (value, grad), (hoisted_value, hoisted_grad) = _potentials(model, data)
    # Only float32 rounding can differ (XLA may fuse the two programs differently).
    np.testing.assert_allclose(hoisted_value, value, rtol=1e-6, atol=1e-5)
    # Where the potential is +inf (theta < max(y) in the last case; the sampler
    # rejects those points) the gradients are meaningless and may differ.
    finite = np.isfinite(value)
    assert finite.mean() > 0.3
    if case == "parameter-dependent-support":
        assert not finite.all()
    for site in grad:
        np.testing.assert_allclose(
            hoisted_grad[site][finite], grad[site][finite], rtol=1e-5, atol=1e-5
        )


def _log_joint(model, data, params):
    return float(log_density(model, (), data, params)[0])


def test_invalid_data_give_minus_inf_as_numpyro_and_unvalidated_does_not():
    # A count of 2.5: unvalidated, Poisson's formula gives it a finite density.
    data = {"y": np.where(np.arange(40) == 7, 2.5, Y_COUNTS).astype(np.float32)}
    params = {"rate": jnp.float32(3.0)}
    keep_all = {**data, "keep": np.ones(40, bool)}
    with pytest.warns(UserWarning, match="Out-of-support values"):
        assert _log_joint(masked_poisson_model, keep_all, params) == -np.inf
    assert (
        _log_joint(hoist_observed_checks(masked_poisson_model), keep_all, params)
        == -np.inf
    )

    # Power: without the hoisted check (validation simply off), the density is
    # finite and the bad count silently shapes the posterior.
    class _Unchecked(numpyro.primitives.Messenger):
        def process_message(self, msg):
            if msg["type"] == "sample" and msg["is_observed"]:
                msg["fn"] = _without_validation(msg["fn"])

    unchecked = _log_joint(_Unchecked(masked_poisson_model), keep_all, params)
    assert np.isfinite(unchecked)


def test_masked_out_invalid_values_are_ignored_as_numpyro_does():
    keep = np.arange(40) != 7
    data = {
        "y": np.where(~keep, -1.0, Y_COUNTS).astype(np.float32),
        "keep": keep,
    }
    params = {"rate": jnp.float32(3.0)}
    expected = _log_joint(masked_poisson_model, data, params)
    assert np.isfinite(expected)
    np.testing.assert_allclose(
        _log_joint(hoist_observed_checks(masked_poisson_model), data, params),
        expected,
        rtol=1e-6,
    )


def test_the_users_distribution_objects_are_not_modified():
    likelihood = dist.Normal(0.0, 1.0)

    def model(y=None):
        numpyro.sample("mu", dist.Normal(0.0, 1.0))
        with numpyro.plate("n", 40):
            numpyro.sample("y", likelihood, obs=y)

    log_density(hoist_observed_checks(model), (), {"y": Y_REAL}, {"mu": 0.0})
    assert likelihood._validate_args


def _fit(model, data):
    return pgm.fit(
        jax.random.key(0),
        model,
        data=data,
        method="nuts",
        num_warmup=200,
        num_samples=200,
        num_chains=2,
        progress_bar=False,
        checks=False,
    )


@pytest.mark.parametrize(
    ("model", "data", "site", "shown"),
    [
        (
            masked_poisson_model,
            {
                "y": np.where(np.arange(40) == 5, -2.0, Y_COUNTS).astype(np.float32),
                "keep": np.ones(40, bool),
            },
            "y",
            "Poisson",
        ),
        (normal_model, {"y": Y_REAL}, None, None),
    ],
)
def test_fit_rejects_observations_outside_the_support(model, data, site, shown):
    if site is None:
        _fit(model, data)  # valid data pass
        return
    with pytest.raises(ValueError, match="outside the support") as error:
        _fit(model, data)
    message = str(error.value)
    assert f"'{site}'" in message and shown in message and "[(5,)]" in message


def test_fit_rejects_binary_outcomes_other_than_zero_and_one():
    def model(y=None):
        p = numpyro.sample("p", dist.Beta(1.0, 1.0))
        with numpyro.plate("n", 6):
            numpyro.sample("y", dist.Bernoulli(p), obs=y)

    with pytest.raises(ValueError, match=r"'y' has 1 value\(s\) outside"):
        _fit(model, {"y": np.array([0, 1, 1, 2, 0, 1], np.int32)})


def test_masked_out_and_parameter_dependent_supports_reach_the_sampler():
    keep = np.arange(40) != 3
    data = {"y": np.where(~keep, -5.0, Y_COUNTS).astype(np.float32), "keep": keep}
    rate = _fit(masked_poisson_model, data).samples["rate"]
    assert np.isfinite(rate).all()
    # Uniform(0, theta): the support depends on theta; every draw must respect it.
    y = np.abs(Y_REAL)
    theta = _fit(uniform_scale_model, {"y": y}).samples["theta"]
    assert theta.min() >= y.max()


class _NormalSkippingNaN(dist.Distribution):
    """A user-defined likelihood that reads NaN as a missing value."""

    support = dist.constraints.real

    def __init__(self, loc):
        self.loc = loc
        super().__init__(batch_shape=jnp.shape(loc))

    def log_prob(self, value):
        density = dist.Normal(self.loc, 1.0, validate_args=False).log_prob(value)
        return jnp.where(jnp.isnan(value), 0.0, density)


def test_user_defined_distributions_keep_their_own_treatment_of_values():
    def model(y=None):
        mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
        with numpyro.plate("n", 40):
            numpyro.sample("y", _NormalSkippingNaN(mu), obs=y)

    y = np.where(np.arange(40) % 5 == 0, np.nan, Y_REAL).astype(np.float32)
    params = {"mu": jnp.float32(0.5)}
    expected = _log_joint(model, {"y": y}, params)
    assert np.isfinite(expected)
    assert _log_joint(hoist_observed_checks(model), {"y": y}, params) == expected
