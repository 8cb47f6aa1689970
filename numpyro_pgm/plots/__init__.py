"""Figures for any result, built on arviz-plots and matplotlib.

Every function takes an :class:`~numpyro_pgm.InferenceResult` (or, for
:func:`methods`, several) with keyword-only options and returns the matplotlib
``Figure``; none shows it (call ``fig.savefig(...)`` or let a notebook display
it). A plot that needs what the result lacks (the energy of an SVI fit, the ELBO of
a NUTS fit, a predictive group that was not drawn) raises ``ValueError`` saying what
is missing and how to get it. :func:`applicable` lists the plots that mean
something for a result; :func:`numpyro_pgm.report` draws those.

Figures are drawn in the arviz-plots style named by :data:`STYLE`; set it to
``None`` to draw with your own matplotlib settings.
"""

import numpy as np

from ..results import InferenceResult
from ._common import MCMC, check_result
from .chains import elbo as elbo
from .chains import energy as energy
from .chains import ess as ess
from .chains import pair as pair
from .chains import rank as rank
from .chains import trace as trace
from .comparison import methods as methods
from .comparison import sbc_ecdf as sbc_ecdf
from .predictive import loo_pit as loo_pit
from .predictive import pareto_khat as pareto_khat
from .predictive import posterior_predictive as posterior_predictive
from .predictive import prior_predictive as prior_predictive

__all__ = [
    "MAX_PANELS",
    "STYLE",
    "applicable",
    "elbo",
    "energy",
    "ess",
    "loo_pit",
    "methods",
    "pair",
    "pareto_khat",
    "posterior_predictive",
    "prior_predictive",
    "rank",
    "sbc_ecdf",
    "trace",
]

STYLE: str | None = "arviz-variat"
"""The matplotlib style figures are drawn in (``None``: the current rcParams)."""

MAX_PANELS = 16
"""With ``var_names=None``, plots draw the continuous posterior sites, in order,
that fit in this many panels in all; larger sites are left out (name them in
``var_names`` and pick components with ``coords``)."""


def applicable(result: InferenceResult) -> tuple[str, ...]:
    """Name the plots of this module that mean something for ``result``.

    Parameters
    ----------
    result : InferenceResult
        Any result.

    Returns
    -------
    tuple of str
        Function names of this module, e.g. ``("trace", "rank", "energy", ...)``:
        chain diagnostics for MCMC (``rank`` also for SVI restarts), ``energy`` for
        NUTS/HMC, ``elbo`` for SVI, ``pair`` with two or more scalar parameters,
        predictive checks for the groups drawn, and LOO plots with a
        log-likelihood.
    """
    check_result(result, "applicable")
    if result.num_draws < 2:
        return ()
    names = []
    mcmc = result.method in MCMC
    if mcmc:
        names.append("trace")
    if result.num_chains >= 2 and (mcmc or result.method == "svi"):
        names.append("rank")
    if (
        sum(int(np.prod(np.shape(v)[2:], dtype=int)) for v in result.samples.values())
        >= 2
    ):
        names.append("pair")
    if "energy" in result.sample_stats:
        names.append("energy")
    if mcmc:
        names.append("ess")
    if "elbo" in result.sample_stats:
        names.append("elbo")
    if "prior_predictive" in result.groups:
        names.append("prior_predictive")
    if "posterior_predictive" in result.groups:
        names.append("posterior_predictive")
    if "log_likelihood" in result.groups:
        if "posterior_predictive" in result.groups:
            names.append("loo_pit")
        names.append("pareto_khat")
    return tuple(names)
