r"""Simulation-based calibration (SBC) for any model and any method of ``fit``.

For :math:`s = 1, \dots, S`: draw :math:`\theta^{(s)} \sim p(\theta)` and
:math:`y^{(s)} \sim p(y \mid \theta^{(s)})` from the model, fit the model to
:math:`y^{(s)}`, thin the posterior draws to :math:`L`, and record the rank of
:math:`\theta^{(s)}` among them. If the method samples the posterior, each rank is
uniform on :math:`\{0, \dots, L\}` (Talts et al., 2018). Ranks are turned into PIT
values :math:`u = (r + v)/(L + 1)`, :math:`v \sim U(0, 1)`, and tested for uniformity
with arviz-stats' ``uniformity_test`` (Säilynoja et al. 2022, pointwise-tail
methods); one p-value per scalar parameter, Bonferroni-combined.

Simulations run one after another through ``fit``, whose compiled programs are
cached, so only the first simulation compiles (for NUTS and Gibbs). Progress can be
checkpointed to a ``.npz`` file after every simulation and resumed from it.

References
----------
.. [1] S. Talts, M. Betancourt, D. Simpson, A. Vehtari, A. Gelman (2018).
   Validating Bayesian inference algorithms with simulation-based calibration.
   arXiv:1804.06788.
.. [2] T. Säilynoja, P.-C. Bürkner, A. Vehtari (2022). Graphical test for discrete
   uniformity and its applications in goodness-of-fit evaluation and multiple sample
   comparison. Statistics and Computing 32, 32.
"""

import os
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np
from arviz_stats.base import array_stats
from numpyro.infer import Predictive
from tqdm.auto import tqdm

from ._typing import Data, Model
from ._validation import check_data, check_model, check_rng_key
from .inference import fit
from .inference._inspect import inspect_model, uncondition

__all__ = ["SBCResult", "sbc"]


@dataclass(frozen=True)
class SBCResult:
    """Ranks and uniformity tests of a simulation-based calibration.

    Attributes
    ----------
    ranks : numpy.ndarray of shape (num_simulations, num_parameters)
        Rank of each true scalar parameter among the thinned posterior draws.
    parameter_names : tuple of str
        ``site`` or ``site[i, j]`` for each column of ``ranks``.
    num_draws : int
        Thinned posterior draws per simulation (ranks lie in ``0..num_draws``).
    p_values : numpy.ndarray of shape (num_parameters,)
        Uniformity-test p-value of each parameter's PIT values.
    method : str
        The ``fit`` method calibrated.
    """

    ranks: np.ndarray
    parameter_names: tuple[str, ...]
    num_draws: int
    p_values: np.ndarray
    method: str

    @property
    def p_value(self) -> float:
        """Bonferroni-combined p-value: ``min(1, P * min p)`` over P parameters."""
        return float(min(1.0, self.p_values.size * np.min(self.p_values)))

    def passed(self, failure_rate: float = 0.001) -> bool:
        """Whether uniformity holds at the declared ``failure_rate``."""
        return self.p_value > failure_rate

    def to_markdown(self) -> str:
        """Return a Markdown table of the per-parameter p-values."""
        lines = ["| parameter | p-value |", "|---|---|"]
        lines += [
            f"| {name} | {p:.3g} |"
            for name, p in zip(self.parameter_names, self.p_values, strict=True)
        ]
        lines.append(f"| **combined (Bonferroni)** | {self.p_value:.3g} |")
        return "\n".join(lines)

    def figure(self):
        """Draw the rank ECDF figure (see :func:`numpyro_pgm.plots.sbc_ecdf`)."""
        from .plots import sbc_ecdf

        return sbc_ecdf(
            self.ranks, num_draws=self.num_draws, names=self.parameter_names
        )


def _scalar_names(site: str, shape: tuple[int, ...]) -> list[str]:
    if not shape:
        return [site]
    return [f"{site}[{', '.join(map(str, i))}]" for i in np.ndindex(*shape)]


def _thin(draws: np.ndarray, num_draws: int) -> np.ndarray:
    flat = draws.reshape(-1, *draws.shape[2:])
    if flat.shape[0] < num_draws:
        raise ValueError(
            f"num_draws={num_draws} exceeds the {flat.shape[0]} posterior draws per "
            "simulation; lower num_draws or raise num_samples."
        )
    index = np.linspace(0, flat.shape[0] - 1, num_draws).round().astype(int)
    return flat[index]


def _save_atomically(path: Path, **arrays: np.ndarray) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
    os.close(handle)
    try:
        with open(temporary, "wb") as stream:
            np.savez(stream, **arrays)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def sbc(
    rng_key: jax.Array,
    model: Model,
    *,
    data: Data,
    method: str,
    num_simulations: int = 100,
    num_draws: int = 99,
    parameters: tuple[str, ...] | None = None,
    observations: Mapping[str, str] | None = None,
    checkpoint: str | os.PathLike | None = None,
    progress_bar: bool = True,
    **fit_options: Any,
) -> SBCResult:
    """Run simulation-based calibration of ``method`` on ``model``.

    Parameters
    ----------
    rng_key : jax.Array
        PRNG key; simulation ``s`` uses ``fold_in(rng_key, s)``.
    model : callable
        A generative NumPyro model (it must sample its observations when they are
        not given).
    data : mapping
        The model's arguments, with the observations present (their shapes define
        the simulated data); their values are replaced by simulated ones.
    method : str
        A ``fit`` method (``"nuts"``, ``"gibbs"``, ``"laplace"``, ``"svi"``...).
    num_simulations : int
        Number of simulated data sets :math:`S`.
    num_draws : int
        Posterior draws :math:`L` kept (evenly thinned) per simulation; MCMC should
        give at least about ``num_draws`` effective draws.
    parameters : tuple of str, optional
        Latent sites to rank (default: every continuous latent site).
    observations : mapping, optional
        Observed site name to the ``data`` key it comes from; by default each
        observed site is fed by the data key of the same name.
    checkpoint : path, optional
        A ``.npz`` file: ranks are saved there after every simulation, and a run
        with the same file resumes where it stopped.
    progress_bar : bool
        Show a bar over simulations.
    **fit_options
        Passed to :func:`numpyro_pgm.fit` (e.g. ``num_samples``, ``guide``).

    Returns
    -------
    SBCResult
        Ranks, per-parameter p-values and the combined p-value.
    """
    rng_key = check_rng_key(rng_key)
    check_model(model)
    data = check_data(model, data)
    if not isinstance(num_simulations, int) or num_simulations < 2:
        raise ValueError(f"num_simulations must be an int >= 2; got {num_simulations}.")
    if not isinstance(num_draws, int) or num_draws < 1:
        raise ValueError(f"num_draws must be a positive int; got {num_draws}.")
    info = inspect_model(model, data, jax.random.fold_in(rng_key, 2**31 - 1))
    feeds = dict(observations or {s: s for s in info.observed_sites})
    missing = [s for s in info.observed_sites if feeds.get(s) not in data]
    if missing:
        raise ValueError(
            f"observed site(s) {missing} have no data key of the same name; pass "
            "observations={site: data_key} to say which argument feeds each site."
        )
    ranked = tuple(parameters or info.continuous_sites)
    unknown = [p for p in ranked if p not in info.latent_sites]
    if unknown:
        raise ValueError(
            f"parameters {unknown} are not latent sites; choose from "
            f"{list(info.latent_sites)}."
        )
    simulator = Predictive(uncondition(model, info.observed_sites), num_samples=1)
    fit_options.setdefault("checks", False)
    if method in ("nuts", "hmc", "gibbs", "svi"):
        fit_options.setdefault("progress_bar", False)

    path = Path(checkpoint) if checkpoint is not None else None
    ranks: list[np.ndarray] = []
    if path is not None and path.exists():
        saved = np.load(path)
        if int(saved["num_draws"]) != num_draws or str(saved["method"]) != method:
            raise ValueError(
                f"the checkpoint {str(path)!r} was written for method="
                f"{str(saved['method'])!r}, num_draws={int(saved['num_draws'])}; "
                "use another file or the same settings."
            )
        ranks = list(saved["ranks"])
    names: list[str] = []
    bar = tqdm(total=num_simulations, initial=len(ranks), disable=not progress_bar)
    try:
        for index in range(len(ranks), num_simulations):
            key = jax.random.fold_in(rng_key, index)
            simulate_key, fit_key, tie_key = jax.random.split(key, 3)
            simulated = {
                k: np.asarray(v)[0] for k, v in simulator(simulate_key, **data).items()
            }
            sim_data = dict(data)
            for site, data_key in feeds.items():
                sim_data[data_key] = simulated[site]
            with warnings.catch_warnings():
                # A simulated data set may be hard for the method; SBC judges that
                # through the ranks, not through per-fit warnings.
                warnings.simplefilter("ignore")
                result = fit(
                    fit_key, model, data=sim_data, method=method, **fit_options
                )
            row, names = [], []
            for site in ranked:
                truth = np.asarray(simulated[site])
                draws = _thin(np.asarray(result.samples[site]), num_draws)
                below = (draws < truth).reshape(num_draws, -1).sum(0)
                ties = (draws == truth).reshape(num_draws, -1).sum(0)
                jitter = np.asarray(jax.random.uniform(tie_key, below.shape))
                row.append(below + np.floor(jitter * (ties + 1)).astype(int))
                names += _scalar_names(site, truth.shape)
            ranks.append(np.concatenate(row))
            if path is not None:
                _save_atomically(
                    path, ranks=np.stack(ranks), num_draws=num_draws, method=method
                )
            bar.update(1)
    finally:
        bar.close()
    if not names:
        names = [
            n
            for site in ranked
            for n in _scalar_names(site, np.shape(_prior_draw(model, data, site)))
        ]
    ranks_array = np.stack(ranks).astype(np.int64)
    pit_key = jax.random.fold_in(rng_key, 2**31 - 2)
    pit = (ranks_array + np.asarray(jax.random.uniform(pit_key, ranks_array.shape))) / (
        num_draws + 1
    )
    p_values = np.atleast_1d(
        np.asarray(array_stats.uniformity_test(pit, axis=0)[0], dtype=np.float64)
    )
    return SBCResult(
        ranks=ranks_array,
        parameter_names=tuple(names),
        num_draws=num_draws,
        p_values=p_values,
        method=method,
    )


def _prior_draw(model: Model, data: Data, site: str) -> np.ndarray:
    """Return a prior draw of ``site`` (for naming the columns of resumed ranks)."""
    draw = Predictive(model, num_samples=1, return_sites=[site])(
        jax.random.key(0), **data
    )
    return np.asarray(draw[site])[0]
