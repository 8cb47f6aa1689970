"""A second fit of the same model on data of the same shapes compiles nothing."""

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import numpyro_pgm as pgm


def model(y=None):
    mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(2.0))
    with numpyro.plate("point", 30):
        numpyro.sample("y", dist.Normal(mu, sigma), obs=y)


@pytest.fixture
def count_compilations():
    events = []

    def listener(name, seconds, **kwargs):
        if "backend_compile" in name:
            events.append(name)

    jax.monitoring.register_event_duration_secs_listener(listener)
    yield events
    jax.monitoring.unregister_event_duration_listener(listener)


@pytest.mark.parametrize("method", ["nuts", "gibbs"])
def test_second_mcmc_fit_compiles_nothing(method, count_compilations):
    rng = np.random.default_rng(0)
    options = dict(num_warmup=100, num_samples=100, progress_bar=False, checks=False)
    first = pgm.fit(
        jax.random.key(0),
        model,
        data={"y": rng.normal(2, 1, 30)},
        method=method,
        **options,
    )
    assert count_compilations, "the first fit must compile something"
    count_compilations.clear()
    second = pgm.fit(
        jax.random.key(1),
        model,
        data={"y": rng.normal(2, 1, 30)},
        method=method,
        **options,
    )
    assert count_compilations == []
    assert not np.array_equal(first.samples["mu"], second.samples["mu"])


@pytest.mark.parametrize(
    "method, options",
    [
        ("laplace", {}),
        ("map", {}),
        ("svi", {"num_steps": 300, "num_samples": 100, "progress_bar": False}),
    ],
)
def test_second_optimisation_fit_compiles_nothing(method, options, count_compilations):
    rng = np.random.default_rng(0)
    fits = []
    for seed in range(2):
        count_compilations.clear()
        fits.append(
            pgm.fit(
                jax.random.key(seed),
                model,
                data={"y": rng.normal(2, 1, 30)},
                method=method,
                checks=False,
                **options,
            )
        )
        if seed == 0:
            assert count_compilations, "the first fit must compile something"
    assert count_compilations == []
    assert not np.array_equal(fits[0].samples["mu"], fits[1].samples["mu"])


def test_parallel_and_sequential_chains_give_the_same_draws():
    # Both run the same one-chain program with the same per-chain keys. Vectorised
    # chains batch the arithmetic, and NUTS trajectories amplify the last-bit
    # differences, so they are only equal in distribution.
    data = {"y": np.random.default_rng(1).normal(2, 1, 30)}
    results = {
        chain_method: pgm.fit(
            jax.random.key(3),
            model,
            data=data,
            method="nuts",
            num_warmup=100,
            num_samples=100,
            num_chains=2,
            chain_method=chain_method,
            progress_bar=False,
            checks=False,
        ).samples["mu"]
        for chain_method in ("parallel", "sequential")
    }
    np.testing.assert_array_equal(results["parallel"], results["sequential"])


def test_fit_draws_equal_numpyro_mcmc_draws_for_the_same_key():
    from numpyro.infer import MCMC, NUTS

    data = {"y": np.random.default_rng(2).normal(2, 1, 30)}
    settings = {"num_warmup": 10, "num_samples": 20, "num_chains": 2}
    ours = pgm.fit(
        jax.random.key(4),
        model,
        data=data,
        method="nuts",
        chain_method="parallel",
        progress_bar=False,
        checks=False,
        **settings,
    )
    mcmc = MCMC(NUTS(model), chain_method="parallel", progress_bar=False, **settings)
    mcmc.run(jax.random.key(4), **data)
    theirs = mcmc.get_samples(group_by_chain=True)
    # The same chains, step for step. The two programs are compiled differently
    # (NumPyro bakes the data in as constants; fit passes them as arguments and
    # checks observed supports once per density), so float32 rounding differs in
    # the last bits, and NUTS's warmup amplifies such differences over hundreds
    # of iterations: hence a short run. Different keys or a different algorithm
    # differ at the scale of the posterior sd from the first draw.
    for site in ("mu", "sigma"):
        np.testing.assert_allclose(ours.samples[site], theirs[site], rtol=1e-4)


def test_model_inspection_compiles_nothing_and_falls_back_for_computed_observations(
    count_compilations,
):
    from numpyro_pgm.inference._inspect import inspect_model

    y = jax.numpy.asarray(np.random.default_rng(5).normal(2, 1, 30))
    key = jax.random.key(0)
    count_compilations.clear()  # making the key and array compiles small programs
    info = inspect_model(model, {"y": y}, key)
    assert count_compilations == []
    assert info.latent_sites == ("mu", "sigma")
    np.testing.assert_array_equal(info.observed_values["y"], np.asarray(y))

    def computed(y=None):
        mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
        with numpyro.plate("point", 30):
            numpyro.sample("y", dist.Normal(mu, 1.0), obs=2.0 * y)

    # The observation is computed inside the model, so only an eager trace gives
    # its value.
    info = inspect_model(computed, {"y": y}, key)
    np.testing.assert_allclose(info.observed_values["y"], 2.0 * np.asarray(y))


def test_a_first_fit_compiles_its_programs_and_no_eager_helpers():
    """The sampler, the pointwise log-likelihood and the chain keys' split.

    Every eager JAX operation on fit's path would compile a small program of its
    own in every new process (about 0.05 s each on a CPU): keys for later steps
    (folded only when needed), per-device slices of device-held chain keys (they
    enter as host key data) and reshapes of the draws (on the host).
    """
    names = []

    def listener(name, seconds, **kwargs):
        if "backend_compile" in name:
            names.append(kwargs.get("fun_name", "?"))

    def fresh_model(y=None):  # a model no other test has compiled
        loc = numpyro.sample("loc", dist.Normal(0.0, 3.0))
        scale = numpyro.sample("scale", dist.HalfNormal(1.0))
        with numpyro.plate("point", 17):
            numpyro.sample("y", dist.Normal(loc, scale), obs=y)

    y = np.random.default_rng(6).normal(1.0, 1.0, 17).astype(np.float32)
    key = jax.random.key(3)
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        pgm.fit(
            key,
            fresh_model,
            data={"y": y},
            method="nuts",
            num_warmup=50,
            num_samples=50,
            progress_bar=False,
            checks=False,
        )
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    for helper in ("fold_in", "multi_slice", "unstack", "reshape"):
        assert not [n for n in names if helper in n], names
    assert len(names) <= 5, names
