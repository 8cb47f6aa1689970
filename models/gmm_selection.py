r"""Choosing the number of mixture components: PSIS-LOO and the Laplace evidence.

For each candidate :math:`K`, :func:`select_num_components` fits
:func:`numpyro_pgm.models.gmm.model` twice and reports two criteria side by side:

* **PSIS-LOO** of the marginal likelihood. NUTS sums the assignments out, so the
  pointwise log-likelihood is :math:`\log p(x_n \mid \pi, \mu, \Sigma) = \log
  \sum_k \pi_k \mathcal{N}(x_n; \mu_k, \Sigma_k)` (seed eq. (2.10)), and
  ``arviz_stats.loo`` estimates :math:`\mathrm{elpd} = \sum_n \log p(x_n \mid
  x_{-n})` with its standard error. The pointwise terms are invariant to relabelling,
  so label switching between chains does not affect them.
* **The Laplace log evidence** :math:`\log p(x \mid K)`. ``fit(method="laplace")``
  expands the log posterior to second order around *one* mode :math:`\hat\theta` on
  the unconstrained space,

  .. math::

      \log p(x \mid K) \approx \log p(x, \hat\theta) + \tfrac{D}{2} \log 2\pi
      - \tfrac12 \log \det H.

  The mixture posterior is invariant to the :math:`K!` permutations of the labels
  (seed §2.2: "for each possible assignment, there are :math:`K!` different
  solutions"), so it has :math:`K!` copies of every mode. When the copies are
  separated, each holds the same mass and the evidence is :math:`K!` times the mass
  of one:

  .. math::

      \log p(x \mid K) \approx \log \hat Z_{\text{one mode}} + \log K!.

  The correction is applied when the components are exchangeable (a symmetric
  Dirichlet concentration, ``ordered=False``). With ``ordered=True`` the model keeps
  only one of the copies and its prior already carries the factor :math:`K!`, so no
  correction is added. The correction overcounts when copies overlap, which happens
  when :math:`K` is too large (two components with nearly equal parameters, or an
  empty component that sits at its prior): there :math:`\log K!` is an upper bound on
  the correction, and the corrected evidence an overestimate, which makes too large
  a :math:`K` look better than it is; the ELPD has no such problem.

With a uniform prior over the candidates, the evidence gives posterior
probabilities :math:`p(K \mid x) \propto p(x \mid K)`.

Both criteria are computed on the scale of ``x``. Standardising the data shifts
every candidate's ELPD and log evidence by the same constant (the log Jacobian,
:math:`-N \sum_j \log s_j`), so the comparison between candidates is unchanged.

References
----------
.. [1] F. Tobar, *Probabilistic Generative Models*, lecture notes (2026), seed
   ``003_02afaf35b30b64a9.txt``: §2.2 (the :math:`K!` equivalent solutions),
   Example 3.1 and §3.3 (the Laplace approximation).
.. [2] A. Vehtari, A. Gelman and J. Gabry, "Practical Bayesian model evaluation
   using leave-one-out cross-validation and WAIC", Statistics and Computing 27
   (2017).
.. [3] S. Frühwirth-Schnatter, "Estimating marginal likelihoods for mixture and
   Markov switching models using bridge sampling techniques", Econometrics Journal
   7 (2004): the :math:`K!` symmetric modes.
.. [4] R. E. Kass and A. E. Raftery, "Bayes factors", JASA 90 (1995).
"""

import math
import warnings
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import arviz_stats
import jax
import numpy as np
import pandas as pd
from jax.typing import ArrayLike

import numpyro_pgm as pgm

from . import gmm
from ._gmm_common import _check_sizes

__all__ = ["Selection", "label_correction", "select_num_components"]

CRITERIA = ("loo", "laplace")
NUTS_DEFAULTS = {
    "num_warmup": 500,
    "num_samples": 500,
    "num_chains": 4,
    "progress_bar": False,
}


class Selection(NamedTuple):
    """Output of :func:`select_num_components`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per candidate, indexed by ``num_components``. Columns, for
        ``"loo"``: ``elpd_loo``, ``elpd_loo_se``, ``p_loo``, ``elpd_diff`` and
        ``elpd_diff_se`` (against the best candidate, from the pointwise
        differences), ``pareto_k_max`` and ``num_high_pareto_k`` (k > 0.7); for
        ``"laplace"``: ``log_evidence_mode`` (one mode, as ``fit`` reports it),
        ``label_correction`` (:func:`label_correction`), ``log_evidence`` (their
        sum), ``posterior_prob`` (uniform prior over the candidates) and
        ``laplace_converged``.
    fits : dict of int to dict of str to InferenceResult
        The fits behind each row: ``fits[K]["nuts"]`` and ``fits[K]["laplace"]``
        (missing when that criterion was not requested or the fit failed).
    notes : tuple of str
        What went wrong and was recorded as NaN (e.g. a Hessian that was not
        positive definite).
    """

    table: pd.DataFrame
    fits: dict[int, dict[str, pgm.InferenceResult]]
    notes: tuple[str, ...]

    @property
    def best_loo(self) -> int:
        """The candidate with the highest ELPD."""
        return int(self.table["elpd_loo"].idxmax())

    @property
    def best_evidence(self) -> int:
        """The candidate with the highest corrected Laplace log evidence."""
        return int(self.table["log_evidence"].idxmax())


def label_correction(num_components: int, **model_kwargs: Any) -> float:
    r"""Log of the number of equivalent labellings added to a one-mode evidence.

    :math:`\log K!` for exchangeable components; 0 with ``ordered=True`` (the
    ordered prior already holds the factor) and for a single component.

    Parameters
    ----------
    num_components : int
        Number of components :math:`K`.
    **model_kwargs
        Keyword arguments of :func:`numpyro_pgm.models.gmm.model`; ``ordered`` and
        ``concentration`` are read.

    Returns
    -------
    float
        The correction in nats.

    Raises
    ------
    ValueError
        If the Dirichlet concentration differs between components: the modes then
        differ in height and :math:`\log K!` does not apply.

    Examples
    --------
    >>> from numpyro_pgm.models import gmm_selection
    >>> round(gmm_selection.label_correction(3), 4)  # log 3! = log 6
    1.7918
    >>> gmm_selection.label_correction(3, ordered=True)
    0.0
    """
    if model_kwargs.get("ordered", False) or num_components == 1:
        return 0.0
    concentration = np.asarray(model_kwargs.get("concentration", 1.0), dtype=float)
    if concentration.ndim > 0 and not np.all(concentration == concentration.flat[0]):
        raise ValueError(
            f"the label correction log K! needs exchangeable components, but "
            f"concentration={concentration.tolist()!r} differs between them. Pass a "
            "scalar concentration, or ordered=True to identify the labels."
        )
    return math.lgamma(num_components + 1)


def _loo_columns(result: pgm.InferenceResult) -> tuple[dict[str, float], np.ndarray]:
    elpd = arviz_stats.loo(result.to_datatree(), pointwise=True, var_name="x")
    pareto_k = np.asarray(elpd.pareto_k).ravel()
    columns = {
        "elpd_loo": float(elpd.elpd),
        "elpd_loo_se": float(elpd.se),
        "p_loo": float(elpd.p),
        "pareto_k_max": float(np.max(pareto_k)),
        "num_high_pareto_k": int(np.sum(pareto_k > 0.7)),
    }
    return columns, np.asarray(elpd.elpd_i).ravel()


def _laplace(rng_key, data, options, x64):
    """Laplace fit in float64 when ``x64`` (the mode's gradient then resolves)."""
    if not x64:
        return pgm.fit(
            rng_key, gmm.model, data=data, method="laplace", checks=False, **options
        )
    with jax.enable_x64(True):
        data = {
            k: np.asarray(v, np.float64) if isinstance(v, np.ndarray) else v
            for k, v in data.items()
        }
        return pgm.fit(
            rng_key, gmm.model, data=data, method="laplace", checks=False, **options
        )


def select_num_components(
    rng_key: jax.Array,
    x: ArrayLike,
    *,
    num_components: Iterable[int] = range(1, 7),
    criteria: Iterable[str] = CRITERIA,
    nuts_options: Mapping[str, Any] | None = None,
    laplace_options: Mapping[str, Any] | None = None,
    laplace_x64: bool = True,
    **model_kwargs: Any,
) -> Selection:
    r"""Compare mixtures with different numbers of components.

    For every :math:`K` in ``num_components``: PSIS-LOO on a NUTS fit (the
    assignments summed out) and the Laplace log evidence of one mode corrected by
    :math:`\log K!` (see the module docstring for why, and when that overcounts).

    Parameters
    ----------
    rng_key : jax.Array
        PRNG key; each candidate and criterion gets its own key folded from it.
    x : array_like of shape (num_points, dim)
        Observations.
    num_components : iterable of int
        The candidates :math:`K`.
    criteria : iterable of {"loo", "laplace"}
        Which criteria to compute.
    nuts_options : mapping, optional
        Options for ``fit(method="nuts")``; defaults :data:`NUTS_DEFAULTS`.
    laplace_options : mapping, optional
        Options for ``fit(method="laplace")``, e.g. ``optimizer`` or
        ``hessian_repair``.
    laplace_x64 : bool
        Run the Laplace fits in float64. In float32 the gradient of a sum over a
        few hundred points cannot fall below the default tolerance, so the
        optimiser would stop at ``max_iterations``.
    **model_kwargs
        Other keyword arguments of :func:`numpyro_pgm.models.gmm.model`
        (priors, ``learn_covariance``, ``covariance_prior``, ...).

    Returns
    -------
    Selection
        The table (one row per candidate), the fits and notes on failures.

    Notes
    -----
    Convergence warnings of the fits are not raised (``checks=False``): R-hat of
    ``mu`` fails whenever chains settle on different labellings, which does not
    affect either criterion. Inspect ``fits[K]["nuts"]`` with
    :func:`numpyro_pgm.check` after relabelling if needed.

    Examples
    --------
    >>> import jax
    >>> from numpyro_pgm.models import gmm, gmm_selection
    >>> data = gmm.simulate(jax.random.key(0), num_points=40, num_components=2,
    ...                     dim=1)
    >>> selection = gmm_selection.select_num_components(  # doctest: +SKIP
    ...     jax.random.key(1), data["x"], num_components=[1, 2, 3])
    >>> selection.table[["elpd_loo", "log_evidence"]]  # doctest: +SKIP

    References
    ----------
    .. [1] F. Tobar, seed ``003_02afaf35b30b64a9.txt``, §2.2 and §3.3.
    .. [2] A. Vehtari, A. Gelman and J. Gabry, "Practical Bayesian model
       evaluation using leave-one-out cross-validation and WAIC", Statistics and
       Computing 27 (2017).
    """
    x, num_points, _ = _check_sizes(x, None, None, None)
    x = np.asarray(x)
    candidates = [int(k) for k in num_components]
    criteria = tuple(criteria)
    unknown = sorted(set(criteria) - set(CRITERIA))
    if unknown or not criteria:
        raise ValueError(
            f"criteria must be a non-empty subset of {CRITERIA}; got {criteria!r}."
        )
    if not candidates or any(not 1 <= k <= num_points for k in candidates):
        raise ValueError(
            f"num_components must list integers between 1 and num_points "
            f"({num_points}); got {candidates!r}. Pass e.g. range(1, 7)."
        )
    nuts_options = {**NUTS_DEFAULTS, **(nuts_options or {})}
    laplace_options = dict(laplace_options or {})
    rows, pointwise, fits, notes = {}, {}, {}, []
    for k in candidates:
        data = {"x": x, "num_components": k, **model_kwargs}
        row: dict[str, Any] = {}
        fits[k] = {}
        nuts_key, laplace_key = (
            jax.random.fold_in(jax.random.fold_in(rng_key, k), i) for i in (0, 1)
        )
        if "loo" in criteria:
            result = pgm.fit(
                nuts_key,
                gmm.model,
                data=data,
                method="nuts",
                checks=False,
                **nuts_options,
            )
            fits[k]["nuts"] = result
            with warnings.catch_warnings():
                # arviz-stats warns about high Pareto k; the table reports them.
                warnings.simplefilter("ignore", UserWarning)
                columns, pointwise[k] = _loo_columns(result)
            row.update(columns)
        if "laplace" in criteria:
            correction = label_correction(k, **model_kwargs)
            try:
                result = _laplace(laplace_key, data, laplace_options, laplace_x64)
            except pgm.LaplaceError as error:
                notes.append(f"K={k}: Laplace failed: {error}")
                row.update(
                    log_evidence_mode=np.nan,
                    label_correction=correction,
                    laplace_converged=False,
                )
            else:
                fits[k]["laplace"] = result
                log_evidence = float(result.sample_stats["log_evidence"][0])
                row.update(
                    log_evidence_mode=log_evidence,
                    label_correction=correction,
                    laplace_converged=bool(result.settings["converged"]),
                )
        rows[k] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "num_components"
    if "loo" in criteria:
        best = int(table["elpd_loo"].idxmax())
        differences = {k: pointwise[k] - pointwise[best] for k in candidates}
        table["elpd_diff"] = [float(differences[k].sum()) for k in candidates]
        table["elpd_diff_se"] = [
            float(np.sqrt(num_points) * differences[k].std(ddof=1)) for k in candidates
        ]
    if "laplace" in criteria:
        table["log_evidence"] = table["log_evidence_mode"] + table["label_correction"]
        finite = np.isfinite(table["log_evidence"].to_numpy())
        log_evidence = table["log_evidence"].to_numpy()
        probability = np.full(len(candidates), np.nan)
        if finite.any():
            shifted = np.exp(log_evidence[finite] - log_evidence[finite].max())
            probability[finite] = shifted / shifted.sum()
        table["posterior_prob"] = probability
    order = [
        "elpd_loo",
        "elpd_loo_se",
        "elpd_diff",
        "elpd_diff_se",
        "p_loo",
        "pareto_k_max",
        "num_high_pareto_k",
        "log_evidence_mode",
        "label_correction",
        "log_evidence",
        "posterior_prob",
        "laplace_converged",
    ]
    table = table[[c for c in order if c in table.columns]]
    return Selection(table, fits, tuple(notes))
