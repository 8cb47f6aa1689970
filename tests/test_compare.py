"""compare on a conjugate normal mean, where NUTS and Laplace are both exact.

Model: mu ~ Normal(0, 10) in two dimensions, y_i ~ Normal(mu, 1); the posterior of
each component is Normal with sd 1 / sqrt(N + 1/100). Laplace is exact here, so the
NUTS-Laplace gaps are Monte Carlo error only:

- mean gap (in reference sds) has sd sqrt(1/ESS_nuts + 1/ESS_laplace) with ESS of
  the mean; asserted within Z = 4 of those sds (two-sided failure rate ~6e-5);
- sd gap: the relative error of an sd estimate has sd sqrt(1/(2 ESS)) (Gaussian
  fourth moment) with the ESS of the sd; asserted within Z = 4;
- Wasserstein-1 between two samples of one normal distribution has mean about
  0.9 sqrt(1/n + 1/m) sds; asserted below Z = 4 times sqrt(1/ESS + 1/ESS).

A mean-field guide with its scale fixed at a tenth of the posterior sd is the
deliberately wrong method: its sd gap is -0.9 and its Wasserstein distance
0.9 E|Z| = 0.72 sds by construction, asserted within the same Monte Carlo bound.
"""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from arviz_stats.base import array_stats

import numpyro_pgm as pgm
from numpyro_pgm.compare import Comparison, compare, markdown_table

Z = 4.0
NUM_POINTS, PRIOR_SD = 20, 10.0
POSTERIOR_SD = 1.0 / np.sqrt(NUM_POINTS + 1.0 / PRIOR_SD**2)


def normal_mean(y=None):
    mu = numpyro.sample("mu", dist.Normal(jnp.zeros(2), PRIOR_SD).to_event(1))
    with numpyro.plate("point", NUM_POINTS):
        numpyro.sample("y", dist.Normal(mu, 1.0).to_event(1), obs=y)


def narrow_guide(y=None):
    loc = numpyro.param("loc", jnp.zeros(2))
    numpyro.sample("mu", dist.Normal(loc, 0.1 * POSTERIOR_SD).to_event(1))


@pytest.fixture(scope="module")
def fits():
    rng = np.random.default_rng(11)
    data = {"y": rng.normal([1.0, -2.0], 1.0, size=(NUM_POINTS, 2))}
    nuts = pgm.fit(
        jax.random.key(0),
        normal_mean,
        data=data,
        method="nuts",
        num_warmup=300,
        num_samples=500,
        num_chains=2,
        progress_bar=False,
        checks=False,
    )
    laplace = pgm.fit(
        jax.random.key(1),
        normal_mean,
        data=data,
        method="laplace",
        num_samples=1000,
        optimizer="lbfgs",
        checks=False,
    )
    wrong = pgm.fit(
        jax.random.key(2),
        normal_mean,
        data=data,
        method="svi",
        guide=narrow_guide,
        num_steps=1500,
        num_samples=1000,
        learning_rate=0.05,
        stop_on_plateau=False,
        progress_bar=False,
        checks=False,
    )
    return nuts, laplace, wrong


@pytest.fixture(scope="module")
def mode(fits):
    nuts = fits[0]
    data = {"y": np.asarray(nuts.groups["observed_data"]["y"])}
    return pgm.fit(
        jax.random.key(3), normal_mean, data=data, method="map", checks=False
    )


def _ess(draws, method):
    return array_stats.ess(np.asarray(draws, dtype=float), 0, 1, method=method)


def test_exact_methods_agree_within_monte_carlo_error(fits):
    nuts, laplace, _ = fits
    table = compare([laplace, nuts]).table  # the NUTS reference is found, not first
    assert list(table.index.get_level_values("method")[:2]) == ["laplace", "nuts"]
    draws = nuts.samples["mu"]
    ess_mean, ess_sd = _ess(draws, "mean"), _ess(draws, "sd")
    num_laplace = laplace.num_chains * laplace.num_draws
    for j in range(2):
        row = table.loc[(f"mu[{j}]", "laplace")]
        assert abs(row["mean_gap"]) <= Z * np.sqrt(1 / ess_mean[j] + 1 / num_laplace)
        sd_tolerance = Z * np.sqrt(1 / (2 * ess_sd[j]) + 1 / (2 * num_laplace))
        assert abs(row["sd_gap"]) <= sd_tolerance
        assert row["wasserstein"] <= Z * np.sqrt(1 / ess_mean[j] + 1 / num_laplace)
        reference = table.loc[(f"mu[{j}]", "nuts")]
        assert reference[["mean_gap", "sd_gap", "wasserstein"]].tolist() == [0, 0, 0]


def test_a_too_narrow_guide_shows_a_large_gap(fits):
    nuts, laplace, wrong = fits
    table = compare([nuts, laplace, wrong]).table
    ess_mean = _ess(nuts.samples["mu"], "mean")
    for j in range(2):
        bad = table.loc[(f"mu[{j}]", "svi")]
        exact_tolerance = Z * np.sqrt(1 / ess_mean[j] + 1 / 1000)
        # W1(N(m, s), N(m, s/10)) = 0.9 s E|Z| = 0.72 s: far beyond Monte Carlo error.
        assert bad["sd_gap"] == pytest.approx(-0.9, abs=exact_tolerance)
        assert bad["wasserstein"] == pytest.approx(0.72, abs=exact_tolerance)
        assert bad["wasserstein"] > 3 * exact_tolerance
    # k-hat is pgm.check's; Laplace is exact here, so its weights are constant.
    khat = {f.name: f.value for f in pgm.check(wrong)}["pareto_khat"]
    assert table.loc[("mu[1]", "svi"), "khat"] == khat
    assert table.loc[("mu[0]", "laplace"), "khat"] < 0.5


def test_a_point_estimate_is_a_point_mass(fits, mode):
    # W1 between N(m, s) and a point at the mode m is s E|Z| = s sqrt(2/pi); its
    # Monte Carlo sd is sqrt(1 - 2/pi) / sqrt(ESS) reference sds.
    nuts = fits[0]
    table = compare([nuts, mode]).table
    ess_mean = _ess(nuts.samples["mu"], "mean")
    for j in range(2):
        row = table.loc[(f"mu[{j}]", "map")]
        assert row["sd_gap"] == -1.0
        assert row["ess"] == 1 and row["ess_kind"] == "draws"
        tolerance = Z * np.sqrt((1 - 2 / np.pi) / ess_mean[j]) + abs(row["mean_gap"])
        assert row["wasserstein"] == pytest.approx(np.sqrt(2 / np.pi), abs=tolerance)


def test_cost_columns_say_which_ess(fits):
    nuts, laplace, wrong = fits
    table = compare([nuts, laplace, wrong]).table
    kinds = table.xs("mu[0]", level="parameter")["ess_kind"].to_dict()
    assert kinds == {"nuts": "bulk", "laplace": "psis", "svi": "psis"}
    nuts_row = table.loc[("mu[0]", "nuts")]
    assert nuts_row["ess"] == pytest.approx(
        float(np.min(_ess(nuts.samples["mu"], "bulk")))
    )
    assert nuts_row["ess_per_s"] == pytest.approx(
        nuts_row["ess"] / nuts.timings["total"]
    )
    assert np.isnan(nuts_row["khat"])
    # Laplace is exact here: the importance weights are constant, so PSIS keeps
    # every draw; the narrow guide's weights collapse onto a few draws.
    assert table.loc[("mu[0]", "laplace"), "ess"] == pytest.approx(1000, rel=1e-3)
    assert table.loc[("mu[0]", "svi"), "ess"] < 100


def test_markdown_has_one_row_per_parameter_and_method(fits):
    nuts, laplace, wrong = fits
    comparison = compare({"exact": nuts, "gaussian": laplace, "narrow": wrong})
    assert isinstance(comparison, Comparison)
    assert comparison.reference == "exact"
    text = comparison.to_markdown()
    rows = [line for line in text.splitlines() if line.startswith("|")][2:]
    assert len(rows) == 2 * 3
    assert rows[0].startswith("| mu[0] | exact |")
    assert "psis: PSIS ESS" in text and "bulk: bulk ESS" in text
    assert str(comparison) == text


def test_labels_references_and_errors(fits):
    nuts, laplace, wrong = fits
    table = compare([nuts, wrong, wrong], reference="svi-2").table
    assert list(table.xs("mu[1]", level="parameter").index) == ["nuts", "svi", "svi-2"]
    assert table.loc[("mu[1]", "svi-2"), "mean_gap"] == 0
    assert compare([laplace, nuts], reference=0).reference == "laplace"
    with pytest.raises(ValueError, match="no MCMC result"):
        compare([laplace, wrong])
    with pytest.raises(ValueError, match="out of range"):
        compare([nuts, laplace], reference=2)
    with pytest.raises(ValueError, match="one of the labels"):
        compare([nuts, laplace], reference="gibbs")
    with pytest.raises(TypeError, match="single InferenceResult"):
        compare(nuts)
    with pytest.raises(TypeError, match="entry 'b'"):
        compare({"a": nuts, "b": nuts.to_datatree()})
    with pytest.raises(ValueError, match="not numeric sites"):
        compare([nuts, laplace], var_names=["sigma"])


def test_markdown_table_formats_numbers():
    import pandas as pd

    frame = pd.DataFrame(
        {"x": [1234.5, 0.012345, float("nan")], "kind": ["a|b", "c", "d"]},
        index=pd.Index(["p", "q", "r"], name="name"),
    )
    assert markdown_table(frame).splitlines() == [
        "| name | x | kind |",
        "| --- | --- | --- |",
        "| p | 1234 | a\\|b |",
        "| q | 0.0123 | c |",
        "| r |  | d |",
    ]
