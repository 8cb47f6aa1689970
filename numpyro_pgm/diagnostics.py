r"""Convergence checks that mean the same thing whichever method produced a result.

MCMC (NUTS, HMC, Gibbs): rank-normalised split :math:`\hat R` (> 1.01 fails), bulk
and tail ESS (< 400 fails), divergent transitions, trees that hit the maximum depth,
and E-BFMI (< 0.3 fails), computed by :mod:`numpyro_pgm._convergence` (arviz-stats'
algorithms in NumPy, without arviz-stats' import time). SVI: whether the ELBO
settled, by the rule of :func:`numpyro_pgm.inference.svi.loss_plateau`. SVI and
Laplace: Pareto :math:`\hat k` of the importance weights :math:`p(x, z)/q(z)` (> 0.7
fails: the approximation is too far from the posterior for importance sampling to
repair), from arviz-stats.
Laplace and MAP: whether the optimiser converged.
"""

import importlib
import sys
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from . import _convergence
from .inference.svi import loss_plateau
from .results import InferenceResult

_PRELOAD: threading.Thread | None = None


def preload() -> None:
    """Start importing arviz-stats in a background thread.

    Its import takes about 0.65 s; ``fit`` calls this before it compiles for the
    methods whose checks use it (the Pareto k-hat of SVI and Laplace), so that the
    import overlaps with XLA's compilation (which leaves a core free) and the
    checks at the end of the fit find arviz-stats loaded.
    """
    global _PRELOAD
    if _PRELOAD is not None or "arviz_stats.base" in sys.modules:
        return

    def load() -> None:
        try:
            importlib.import_module("arviz_stats.base")
        except Exception:  # noqa: BLE001 - the import is retried, and raises, on use
            pass

    _PRELOAD = threading.Thread(target=load, name="numpyro_pgm-preload", daemon=True)
    _PRELOAD.start()


def _array_stats():
    """arviz-stats' array functions, imported on first use."""
    if _PRELOAD is not None:
        _PRELOAD.join()
    from arviz_stats.base import array_stats

    return array_stats


__all__ = ["CheckReport", "ConvergenceWarning", "Finding", "check", "THRESHOLDS"]

THRESHOLDS = {
    "rhat": 1.01,
    "ess_bulk": 400.0,
    "ess_tail": 400.0,
    "divergences": 0.0,
    "max_tree_depth": 0.0,
    "ebfmi": 0.3,
    "pareto_khat": 0.7,
}
_MCMC = ("nuts", "hmc", "gibbs")
_MIN_KHAT_DRAWS = 100


class ConvergenceWarning(UserWarning):
    """A convergence check failed; the result may not describe the posterior."""


@dataclass(frozen=True)
class Finding:
    """One check: its name, value, threshold, whether it passed, and advice."""

    name: str
    value: float
    threshold: float
    passed: bool
    message: str


@dataclass(frozen=True)
class CheckReport:
    """The findings of :func:`check`, in a fixed order.

    Iterate over it for the :class:`Finding` objects; ``passed`` is true when all
    passed; ``str(report)`` is a Markdown table.
    """

    method: str
    findings: tuple[Finding, ...]

    @property
    def passed(self) -> bool:
        """Whether every check passed."""
        return all(f.passed for f in self.findings)

    @property
    def failures(self) -> tuple[Finding, ...]:
        """The checks that failed."""
        return tuple(f for f in self.findings if not f.passed)

    def __iter__(self) -> Iterator[Finding]:
        return iter(self.findings)

    def to_markdown(self) -> str:
        """Return the report as a Markdown table."""
        lines = [
            f"Convergence checks ({self.method}): "
            + ("all passed" if self.passed else f"{len(self.failures)} failed"),
            "",
            "| check | value | threshold | status |",
            "|---|---|---|---|",
        ]
        for f in self.findings:
            status = "ok" if f.passed else "FAIL"
            lines.append(f"| {f.name} | {f.value:.4g} | {f.threshold:g} | {status} |")
        return "\n".join(lines)

    __str__ = to_markdown


def _posterior_values(result: InferenceResult) -> dict[str, np.ndarray]:
    return {
        k: np.asarray(v, dtype=np.float64)
        for k, v in result.samples.items()
        if np.issubdtype(np.asarray(v).dtype, np.number)
    }


def _extreme(values: dict[str, np.ndarray], function, pick) -> tuple[float, str]:
    best, where = np.nan, ""
    for name, array in values.items():
        # A component that never moves (e.g. a discrete draw fixed in every draw)
        # has no R-hat or ESS: its 0/0 is skipped, not warned about.
        with np.errstate(invalid="ignore", divide="ignore"):
            stat = np.asarray(function(array))
        stat = stat[np.isfinite(stat)]
        if stat.size == 0:
            continue
        candidate = float(pick(stat))
        if np.isnan(best) or pick([best, candidate]) == candidate:
            best, where = candidate, name
    return best, where


def _mcmc_findings(result: InferenceResult) -> list[Finding]:
    findings = []
    values = _posterior_values(result)
    stats = result.sample_stats
    if result.num_chains * result.num_draws >= 4 and result.num_draws >= 4:
        rhat, at = _extreme(values, _convergence.rhat, np.max)
        findings.append(
            Finding(
                "rhat",
                rhat,
                THRESHOLDS["rhat"],
                not rhat > THRESHOLDS["rhat"],
                f"R-hat of {rhat:.3f} at {at!r}: the chains disagree. Run longer "
                "(num_warmup, num_samples) or reparameterise the model.",
            )
        )
        for kind, ess_function in (
            ("bulk", _convergence.ess_bulk),
            ("tail", _convergence.ess_tail),
        ):
            ess, at = _extreme(values, ess_function, np.min)
            name = f"ess_{kind}"
            findings.append(
                Finding(
                    name,
                    ess,
                    THRESHOLDS[name],
                    not ess < THRESHOLDS[name],
                    f"{kind} ESS of {ess:.0f} at {at!r} (< {THRESHOLDS[name]:.0f}): "
                    "too few effective draws for reliable estimates; draw more "
                    "samples or chains.",
                )
            )
    if "diverging" in stats:
        count = float(np.sum(stats["diverging"]))
        findings.append(
            Finding(
                "divergences",
                count,
                0.0,
                count == 0,
                f"{count:.0f} divergent transitions: the sampler missed part of the "
                "posterior. Raise target_accept_prob (e.g. 0.95) or reparameterise "
                "(non-centred hierarchies).",
            )
        )
    depth_limit = result.settings.get("max_tree_depth")
    if "tree_depth" in stats and depth_limit:
        hits = float(np.sum(np.asarray(stats["tree_depth"]) >= depth_limit))
        findings.append(
            Finding(
                "max_tree_depth",
                hits,
                0.0,
                hits == 0,
                f"{hits:.0f} transitions hit max_tree_depth={depth_limit}: the "
                "sampler is inefficient. Raise max_tree_depth or reparameterise.",
            )
        )
    if "energy" in stats and result.num_draws >= 4:
        ebfmi = float(np.min(_convergence.bfmi(stats["energy"])))
        findings.append(
            Finding(
                "ebfmi",
                ebfmi,
                THRESHOLDS["ebfmi"],
                not ebfmi < THRESHOLDS["ebfmi"],
                f"E-BFMI of {ebfmi:.2f} (< 0.3): the momentum resampling explores the "
                "energy poorly; reparameterise the model (heavy tails, funnels).",
            )
        )
    return findings


def _pareto_khat(log_weight: np.ndarray) -> float:
    """Pareto k-hat of the importance ratios ``exp(log_weight)`` (PSIS).

    arviz-stats' ``psislw`` takes *negated* log ratios (its LOO convention: the
    ratios are ``1 / p(y_i | theta) = exp(-log_lik)``), hence the sign. Ratios that
    are all equal (the approximation is exact) have no tail: k-hat is ``-inf``.
    """
    if np.ptp(log_weight) <= 1e-12 * max(1.0, float(np.max(np.abs(log_weight)))):
        return float("-inf")
    try:
        return float(_array_stats().psislw(-log_weight, r_eff=1.0)[1])
    except ValueError:  # a tail of identical values: bounded ratios
        return float("-inf")


def _khat_finding(result: InferenceResult) -> Finding | None:
    log_weight = result.sample_stats.get("log_weight")
    if log_weight is None or not np.all(np.isfinite(log_weight)):
        return None
    if np.shape(log_weight)[-1] < _MIN_KHAT_DRAWS:
        return None  # too few draws for a Pareto fit of the tail
    khats = [_pareto_khat(chain) for chain in np.asarray(log_weight, np.float64)]
    khat = max(khats)
    return Finding(
        "pareto_khat",
        khat,
        THRESHOLDS["pareto_khat"],
        not khat > THRESHOLDS["pareto_khat"],
        f"Pareto k-hat of {khat:.2f} (> 0.7): the {result.method} approximation is "
        "far from the posterior; importance sampling cannot repair it. Compare "
        "with method='nuts' or use a richer guide.",
    )


def _elbo_findings(result: InferenceResult) -> list[Finding]:
    elbo = result.sample_stats.get("elbo")
    if elbo is None:
        return []
    window = int(result.settings.get("chunk_size") or max(10, elbo.shape[1] // 10))
    worst_gap = 0.0
    settled = True
    for chain in np.asarray(elbo):
        chain = chain[np.isfinite(chain)]
        plateau, improvement, noise = loss_plateau(
            -chain, window, result.settings.get("plateau_tolerance", 1e-4)
        )
        if not plateau:
            settled = False
            if np.isfinite(improvement) and noise > 0:
                worst_gap = max(worst_gap, improvement / noise)
            else:
                worst_gap = np.inf
    return [
        Finding(
            "elbo_settled",
            worst_gap,
            2.0,
            settled,
            "the ELBO was still improving when SVI stopped (improvement over the "
            f"last {window} steps is {worst_gap:.1f} noise sds). Raise num_steps.",
        )
    ]


def _optimizer_findings(result: InferenceResult) -> list[Finding]:
    grad_norm = float(np.max(result.sample_stats.get("grad_norm", [np.nan])))
    tolerance = float(result.settings.get("tolerance", np.nan))
    return [
        Finding(
            "optimizer_converged",
            grad_norm,
            tolerance,
            bool(result.settings.get("converged", False)),
            f"the optimiser stopped with gradient max-norm {grad_norm:.3g} > "
            f"tolerance {tolerance:g}; raise max_iterations or try "
            "optimizer='newton'.",
        )
    ]


def check(result: InferenceResult) -> CheckReport:
    """Run the convergence checks that apply to the result's method.

    Parameters
    ----------
    result : InferenceResult
        The output of :func:`numpyro_pgm.fit` (or :func:`numpyro_pgm.load`).

    Returns
    -------
    CheckReport
        The findings; ``report.passed`` is true when every check passed.
    """
    if not isinstance(result, InferenceResult):
        raise TypeError(
            f"check expects an InferenceResult from numpyro_pgm.fit or load; got "
            f"{type(result).__name__}."
        )
    findings: list[Finding] = []
    if result.method in _MCMC:
        findings += _mcmc_findings(result)
    if result.method in ("laplace", "map"):
        findings += _optimizer_findings(result)
    if result.method == "svi":
        findings += _elbo_findings(result)
    khat = _khat_finding(result)
    if khat is not None:
        findings.append(khat)
    return CheckReport(method=result.method, findings=tuple(findings))


def warn_on_failures(result: InferenceResult, *, stacklevel: int = 2) -> CheckReport:
    """Run :func:`check` and issue a :class:`ConvergenceWarning` per failure."""
    report = check(result)
    for finding in report.failures:
        warnings.warn(finding.message, ConvergenceWarning, stacklevel=stacklevel + 1)
    return report
