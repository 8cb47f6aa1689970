"""Every plot renders for the methods it applies to and refuses the others clearly.

One small regression model is fitted once by NUTS, Laplace and SVI; each figure is
saved to PNG and must be a real image (over 1 kB).
"""

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from matplotlib.figure import Figure

import numpyro_pgm as pgm
from numpyro_pgm import plots

NUM_POINTS = 30


def regression(x, y=None):
    w = numpyro.sample("w", dist.Normal(jnp.zeros(2), 5.0).to_event(1))
    with numpyro.plate("point", x.shape[0]):
        numpyro.sample("y", dist.Normal(w[0] + w[1] * x, 1.0), obs=y)


@pytest.fixture(scope="module")
def fits():
    rng = np.random.default_rng(7)
    x = rng.normal(size=NUM_POINTS)
    data = {"x": x, "y": 1.0 + 0.5 * x + rng.normal(size=NUM_POINTS)}
    common = {"data": data, "checks": False, "posterior_predictive": True}
    return {
        "nuts": pgm.fit(
            jax.random.key(0),
            regression,
            method="nuts",
            num_warmup=150,
            num_samples=150,
            num_chains=2,
            progress_bar=False,
            prior=True,
            **common,
        ),
        "laplace": pgm.fit(
            jax.random.key(1), regression, method="laplace", num_samples=300, **common
        ),
        "svi": pgm.fit(
            jax.random.key(2),
            regression,
            method="svi",
            num_steps=400,
            num_samples=300,
            num_chains=2,
            progress_bar=False,
            **common,
        ),
    }


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _without(result, group):
    return pgm.InferenceResult(
        method=result.method,
        groups={k: v for k, v in result.groups.items() if k != group},
        dims=result.dims,
        coords=result.coords,
        settings=result.settings,
        timings=result.timings,
    )


def _saved(fig, path):
    assert isinstance(fig, Figure)
    fig.savefig(path)
    return path.stat().st_size


RENDERS = {
    "trace": ("nuts", "laplace", "svi"),
    "rank": ("nuts", "svi"),
    "pair": ("nuts", "laplace", "svi"),
    "energy": ("nuts",),
    "ess": ("nuts", "laplace", "svi"),
    "elbo": ("svi",),
    "prior_predictive": ("nuts",),
    "posterior_predictive": ("nuts", "laplace", "svi"),
    "loo_pit": ("nuts", "laplace", "svi"),
    "pareto_khat": ("nuts", "laplace", "svi"),
}
REFUSES = {
    ("rank", "laplace"): "at least 2",
    ("energy", "laplace"): "method='nuts' or 'hmc'",
    ("energy", "svi"): "method='nuts' or 'hmc'",
    ("elbo", "nuts"): "only method='svi'",
    ("elbo", "laplace"): "only method='svi'",
    ("prior_predictive", "laplace"): "prior=True",
    ("prior_predictive", "svi"): "prior=True",
}


@pytest.mark.parametrize(
    "plot, method", [(p, m) for p, methods in RENDERS.items() for m in methods]
)
def test_plot_renders(fits, tmp_path, plot, method):
    fig = getattr(plots, plot)(fits[method])
    assert _saved(fig, tmp_path / f"{plot}_{method}.png") > 1000


@pytest.mark.parametrize("plot, method", list(REFUSES))
def test_plot_refuses_what_does_not_apply(fits, plot, method):
    with pytest.raises(ValueError, match=REFUSES[plot, method]):
        getattr(plots, plot)(fits[method])


def test_applicable_lists_the_plots_that_render(fits):
    expected = {
        method: {p for p, methods in RENDERS.items() if method in methods}
        for method in fits
    }
    # trace and ess render for Laplace/SVI draws but say little about iid draws.
    expected["laplace"] -= {"trace", "ess"}
    expected["svi"] -= {"trace", "ess"}
    for method, result in fits.items():
        assert set(plots.applicable(result)) == expected[method]


def test_predictive_plots_say_how_to_get_the_group(fits):
    result = _without(fits["laplace"], "posterior_predictive")
    for plot in (plots.posterior_predictive, plots.loo_pit):
        with pytest.raises(ValueError, match="posterior_predictive=True"):
            plot(result)
    assert "loo_pit" not in plots.applicable(result)


def test_bad_arguments_are_named(fits):
    with pytest.raises(TypeError, match="expects an InferenceResult"):
        plots.trace(fits["nuts"].to_datatree())
    with pytest.raises(ValueError, match=r"\['sigma'\] not in the 'posterior'"):
        plots.trace(fits["nuts"], var_names=["sigma"])
    with pytest.raises(ValueError, match="at least two scalar parameters"):
        plots.pair(fits["nuts"], coords={"w_dim_0": [0]})
    with pytest.raises(ValueError, match="not an observed site"):
        plots.pareto_khat(fits["nuts"], var_name="w")


def test_methods_overlays_results_labelled_by_method(fits, tmp_path):
    fig = plots.methods([fits["nuts"], fits["laplace"], fits["svi"], fits["svi"]])
    assert _saved(fig, tmp_path / "methods.png") > 1000
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert labels == ["nuts", "laplace", "svi", "svi-2"]
    assert len([ax for ax in fig.axes if ax.has_data()]) == 2  # w[0], w[1]
    fig = plots.methods({"exact": fits["nuts"], "gaussian": fits["laplace"]})
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert labels == ["exact", "gaussian"]
    with pytest.raises(TypeError, match="several results"):
        plots.methods(fits["nuts"])


def test_sbc_ecdf_draws_ranks_with_a_band(tmp_path):
    rng = np.random.default_rng(3)
    ranks = rng.integers(0, 101, size=(100, 3))
    fig = plots.sbc_ecdf(ranks, 100, parameter_names=["a", "b", "c"])
    assert _saved(fig, tmp_path / "sbc.png") > 1000
    assert [ax.get_title() for ax in fig.axes if ax.has_data()] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="0..num_draws=50"):
        plots.sbc_ecdf(ranks, 50)
    with pytest.raises(ValueError, match="shaped"):
        plots.sbc_ecdf(ranks[:, 0], 100)
    with pytest.raises(ValueError, match="3 distinct names"):
        plots.sbc_ecdf(ranks, 100, parameter_names=["a"])
    with pytest.raises(TypeError, match="num_draws must be an int"):
        plots.sbc_ecdf(ranks, 100.0)


def test_style_none_uses_current_settings(fits, monkeypatch):
    monkeypatch.setattr(plots, "STYLE", None)
    with plt.rc_context({"figure.facecolor": "red"}):
        fig = plots.energy(fits["nuts"])
    assert fig.get_facecolor()[:3] == (1.0, 0.0, 0.0)
