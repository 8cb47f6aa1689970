"""The result type: DataTree groups, named dims, immutability, exact save/load."""

import warnings

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
import xarray as xr

import numpyro_pgm as pgm

NUM_GROUPS, NUM_POINTS = 3, 12


def hierarchical(group, y=None):
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfNormal(2.0))
    with numpyro.plate("group", NUM_GROUPS):
        theta = numpyro.sample("theta", dist.Normal(mu, tau))
    numpyro.deterministic("spread", theta - mu)
    with numpyro.plate("point", NUM_POINTS):
        numpyro.sample("y", dist.Normal(theta[group], 1.0), obs=y)


def _data():
    rng = np.random.default_rng(3)
    group = np.repeat(np.arange(NUM_GROUPS), NUM_POINTS // NUM_GROUPS)
    return {"group": group, "y": rng.normal(group.astype(float), 1.0)}


@pytest.fixture(scope="module")
def result():
    return pgm.fit(
        jax.random.key(0),
        hierarchical,
        data=_data(),
        method="nuts",
        num_warmup=200,
        num_samples=200,
        num_chains=2,
        coords={"group": ["a", "b", "c"]},
        dims={"spread": ("group",)},  # defined outside the plate: named by the user
        prior=True,
        posterior_predictive=True,
        progress_bar=False,
        checks=False,
    )


def test_datatree_has_the_groups_and_named_dims(result):
    tree = result.to_datatree()
    assert set(tree.children) == {
        "posterior",
        "sample_stats",
        "log_likelihood",
        "observed_data",
        "constant_data",
        "prior",
        "prior_predictive",
        "posterior_predictive",
    }
    posterior = tree["posterior"]
    assert posterior["theta"].dims == ("chain", "draw", "group")
    assert posterior["spread"].dims == ("chain", "draw", "group")
    assert list(posterior["theta"].coords["group"].values) == ["a", "b", "c"]
    assert tree["observed_data"]["y"].dims == ("point",)
    assert tree["log_likelihood"]["y"].dims == ("chain", "draw", "point")
    assert tree["posterior_predictive"]["y"].dims == ("chain", "draw", "point")
    assert tree["prior_predictive"]["y"].dims == ("chain", "draw", "point")
    assert "group" in tree["constant_data"]
    stats = tree["sample_stats"]
    for name in ("diverging", "tree_depth", "energy", "step_size", "acceptance_rate"):
        assert stats[name].dims == ("chain", "draw"), name
    assert stats["diverging"].dtype == bool


def test_datatree_works_with_arviz(result):
    import arviz_stats

    tree = result.to_datatree()
    summary = arviz_stats.summary(tree, var_names=["mu", "tau"])
    assert len(summary) == 2
    with warnings.catch_warnings():
        # 400 draws of a small hierarchical model: some Pareto k's are high, which
        # arviz-stats rightly warns about; this test checks that LOO runs.
        warnings.simplefilter("ignore", UserWarning)
        loo = arviz_stats.loo(tree)
    assert np.isfinite(loo.elpd)


def test_save_and_load_round_trip_exactly(result, tmp_path):
    path = result.save(tmp_path / "fit.nc")
    loaded = pgm.load(path)
    xr.testing.assert_identical(loaded.to_datatree(), result.to_datatree())
    assert loaded.method == result.method
    assert dict(loaded.settings) == dict(result.settings)
    assert dict(loaded.timings) == dict(result.timings)
    for group, variables in result.groups.items():
        for name, array in variables.items():
            other = loaded.groups[group][name]
            assert other.dtype == array.dtype, (group, name)
            assert np.array_equal(other, array, equal_nan=True), (group, name)
    # Only the file itself is left behind: the temporary was renamed into place.
    assert [p.name for p in tmp_path.iterdir()] == ["fit.nc"]


def test_save_is_atomic_when_writing_fails(result, tmp_path, monkeypatch):
    path = tmp_path / "fit.nc"
    result.save(path)
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(xr.DataTree, "to_netcdf", broken)
    with pytest.raises(OSError, match="disk full"):
        result.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["fit.nc"]


def test_save_into_missing_folder_is_a_clear_error(result, tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        result.save(tmp_path / "nowhere" / "fit.nc")


def test_load_rejects_what_is_not_a_saved_result(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        pgm.load(tmp_path / "missing.nc")
    junk = tmp_path / "junk.nc"
    junk.write_text("not netcdf")
    with pytest.raises(ValueError, match="not a saved numpyro_pgm result"):
        pgm.load(junk)


def test_result_is_immutable(result):
    with pytest.raises(AttributeError):
        result.method = "svi"
    with pytest.raises(TypeError):
        result.samples["mu"] = np.zeros(3)
    with pytest.raises(ValueError):
        result.samples["mu"][0, 0] = 1.0


def test_same_key_gives_same_draws():
    def model(y=None):
        mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
        numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    for method, options in [
        ("nuts", dict(num_warmup=50, num_samples=50, num_chains=2)),
        ("svi", dict(num_steps=200, num_samples=50)),
        ("laplace", dict(num_samples=50)),
    ]:
        options = dict(options, checks=False)
        if method != "laplace":
            options["progress_bar"] = False
        first = pgm.fit(
            jax.random.key(9), model, data={"y": 0.3}, method=method, **options
        )
        second = pgm.fit(
            jax.random.key(9), model, data={"y": 0.3}, method=method, **options
        )
        third = pgm.fit(
            jax.random.key(10), model, data={"y": 0.3}, method=method, **options
        )
        assert np.array_equal(first.samples["mu"], second.samples["mu"]), method
        assert not np.array_equal(first.samples["mu"], third.samples["mu"]), method


def test_nested_learned_parameters_round_trip_through_a_datatree(tmp_path):
    # A guide whose parameters are a pytree (as a network's weights are): their
    # names must be valid DataTree variable names, and save/load must keep them.
    import equinox as eqx
    from numpyro.contrib.module import eqx_module

    def model(y=None):
        mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
        with numpyro.plate("point", 20):
            numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    def guide(y=None):
        net = eqx_module("net", eqx.nn.Linear(1, 2, key=jax.random.key(0)))
        loc, log_scale = net(jax.numpy.ones(1))
        numpyro.sample("mu", dist.Normal(loc, jax.numpy.exp(log_scale)))

    result = pgm.fit(
        jax.random.key(0),
        model,
        data={"y": np.random.default_rng(0).normal(1.0, 1.0, 20)},
        method="svi",
        guide=guide,
        num_steps=50,
        num_samples=20,
        progress_bar=False,
        checks=False,
    )
    names = set(result.groups["learned_params"])
    assert names == {"net$params.weight", "net$params.bias"}
    tree = result.to_datatree()
    assert set(tree["learned_params"].data_vars) == names
    loaded = pgm.load(result.save(tmp_path / "fit.nc"))
    for name in names:
        np.testing.assert_array_equal(
            loaded.groups["learned_params"][name], result.groups["learned_params"][name]
        )
