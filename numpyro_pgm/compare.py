r"""Side-by-side comparison of the posteriors that different methods found.

:func:`compare` sets each method's marginal of every scalar parameter component
against a reference (by default the first MCMC result): the gap of the means and of
the sds in reference sds, the Wasserstein-1 distance between the marginals (also in
reference sds), the run time, the effective draws per second and the Pareto
:math:`\hat k` of the importance weights. With an exact reference and an exact
method the gaps are Monte Carlo noise, of order :math:`1/\sqrt{\text{ESS}}`.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .diagnostics import check
from .results import InferenceResult

if TYPE_CHECKING:  # pandas, xarray and arviz-stats are imported where they are used
    import pandas as pd

__all__ = ["Comparison", "compare", "label_results", "markdown_table"]

REFERENCE_METHODS = ("nuts", "hmc", "gibbs")
_ESS_KINDS = {
    "bulk": "bulk ESS of MCMC (min over parameters)",
    "psis": "PSIS ESS of the importance weights p/q (sum over restarts)",
    "draws": "number of independent draws",
}


@dataclass(frozen=True)
class Comparison:
    r"""The result of :func:`compare`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per (``parameter``, ``method``) pair (the index), with columns
        ``mean``, ``sd``; ``mean_gap`` (mean minus reference mean) and ``sd_gap``
        (sd minus reference sd), both in reference sds; ``wasserstein``, the
        Wasserstein-1 distance to the reference marginal in reference sds;
        ``time_s`` (total run time); ``ess`` and ``ess_kind`` (``"bulk"``: MCMC bulk
        ESS, minimum over the compared parameters; ``"psis"``: the PSIS effective
        size of the importance weights of Laplace/SVI draws, summed over restarts;
        ``"draws"``: the number of independent draws when there are no weights);
        ``ess_per_s``; and ``khat``, the Pareto :math:`\hat k` of
        :func:`numpyro_pgm.check` (Laplace/SVI; empty for MCMC). Per-method columns
        repeat on each of the method's rows.
    reference : str
        The label of the reference result.
    """

    table: "pd.DataFrame"
    reference: str

    def to_markdown(self, *, digits: int = 3) -> str:
        """Return the table as Markdown, after a line saying how to read it.

        Parameters
        ----------
        digits : int
            Significant digits of the numbers.

        Returns
        -------
        str
            A note line, a blank line, and a pipe table with one row per parameter
            and method.
        """
        kinds = dict.fromkeys(self.table["ess_kind"])
        note = (
            f"Reference: {self.reference}. mean_gap, sd_gap and wasserstein are in "
            "reference sds. ess_kind "
            + "; ".join(f"{kind}: {_ESS_KINDS[kind]}" for kind in kinds)
            + "."
        )
        return note + "\n\n" + markdown_table(self.table, digits=digits)

    __str__ = to_markdown


def label_results(
    results: Sequence[InferenceResult] | Mapping[str, InferenceResult] | Any,
    caller: str = "compare",
) -> dict[str, InferenceResult]:
    """Label results: a mapping's keys, or method names made unique.

    Parameters
    ----------
    results : sequence or mapping of InferenceResult
        A list labels each result by its method, numbering repeats as
        ``"svi"``, ``"svi-2"``, ...; a mapping keeps its (string) keys.
    caller : str
        The public function's name, for error messages.

    Returns
    -------
    dict of str to InferenceResult
        The results by label, in the given order.
    """
    if isinstance(results, InferenceResult):
        raise TypeError(
            f"{caller} takes several results, as a list or a dict label -> result; "
            f"got a single InferenceResult. Pass [{results.method}_result, ...]."
        )
    if isinstance(results, Mapping):
        items = [(str(k), v) for k, v in results.items()]
    elif isinstance(results, Sequence) and not isinstance(results, str):
        items, seen = [], {}
        for result in results:
            method = getattr(result, "method", type(result).__name__)
            seen[method] = seen.get(method, 0) + 1
            label = method if seen[method] == 1 else f"{method}-{seen[method]}"
            items.append((label, result))
    else:
        raise TypeError(
            f"{caller} takes a list of InferenceResult or a dict label -> "
            f"InferenceResult; got {type(results).__name__}."
        )
    for label, result in items:
        if not isinstance(result, InferenceResult):
            raise TypeError(
                f"{caller}: entry {label!r} is a {type(result).__name__}, not an "
                "InferenceResult from numpyro_pgm.fit or load."
            )
    if not items:
        raise ValueError(f"{caller} needs at least one result; got none.")
    return dict(items)


def markdown_table(frame: "pd.DataFrame", *, digits: int = 3) -> str:
    """Write a DataFrame as a Markdown pipe table, index included.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table; a named (or multi-) index becomes leading columns.
    digits : int
        Significant digits of floating-point numbers; NaN is left blank.

    Returns
    -------
    str
        The table, one line per row after the header and rule lines.
    """
    index_names = [n if n is not None else "" for n in frame.index.names]
    header = [*index_names, *map(str, frame.columns)]
    lines = [_row(header), _row(["---"] * len(header))]
    for key, row in zip(frame.index, frame.itertuples(index=False)):
        keys = key if isinstance(key, tuple) else (key,)
        cells = [_cell(v, digits) for v in (*keys, *row)]
        lines.append(_row(cells))
    return "\n".join(lines)


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return ""
        if math.isfinite(value) and abs(value) >= 10 ** (digits - 1):
            return f"{value:.0f}"
        return f"{value:.{digits}g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _reference_label(labelled: dict[str, InferenceResult], reference) -> str:
    labels = list(labelled)
    if reference is None:
        for label, result in labelled.items():
            if result.method in REFERENCE_METHODS:
                return label
        raise ValueError(
            f"compare found no MCMC result ({', '.join(REFERENCE_METHODS)}) to use as "
            f"the reference among {labels}; pass reference=<index or label>."
        )
    if isinstance(reference, int | np.integer) and not isinstance(reference, bool):
        if not -len(labels) <= reference < len(labels):
            raise ValueError(
                f"reference={reference} is out of range for {len(labels)} results."
            )
        return labels[int(reference)]
    if isinstance(reference, str) and reference in labelled:
        return reference
    raise ValueError(
        f"reference must be None, an index or one of the labels {labels}; got "
        f"{reference!r}."
    )


def _component_labels(result: InferenceResult, site: str) -> list[str]:
    dims = result.dims["posterior"][site][2:]
    shape = np.shape(result.samples[site])[2:]
    if not shape:
        return [site]
    labels = []
    for index in np.ndindex(*shape):
        parts = []
        for dim, i in zip(dims, index):
            values = result.coords.get(dim)
            parts.append(str(values[i]) if values is not None else str(i))
        labels.append(f"{site}[{', '.join(parts)}]")
    return labels


def _shared_sites(labelled, reference: str, var_names) -> list[str]:
    ref = labelled[reference]
    shared = [
        site
        for site, value in ref.samples.items()
        if np.issubdtype(np.asarray(value).dtype, np.number)
        and all(
            site in r.samples and np.shape(r.samples[site])[2:] == np.shape(value)[2:]
            for r in labelled.values()
        )
    ]
    if var_names is not None:
        names = [var_names] if isinstance(var_names, str) else list(var_names)
        missing = [n for n in names if n not in shared]
        if missing:
            raise ValueError(
                f"var_names={var_names!r}: {missing} are not numeric sites of the "
                f"same shape in every result; shared sites: {shared}."
            )
        shared = names
    if not shared:
        raise ValueError(
            "compare found no posterior site shared (same name and shape) by all "
            f"results {list(labelled)}; are they fits of the same model?"
        )
    return shared


def _flat(result: InferenceResult, site: str) -> np.ndarray:
    """Draws of ``site`` as ``(chain, draw, component)``."""
    value = np.asarray(result.samples[site], dtype=np.float64)
    return value.reshape(value.shape[:2] + (-1,))


def _ess(result: InferenceResult, sites: Sequence[str]) -> tuple[float, str]:
    from arviz_stats.base import array_stats

    draws = result.num_chains * result.num_draws
    if result.method in REFERENCE_METHODS:
        if result.num_draws < 4:
            return float("nan"), "bulk"
        values = [array_stats.ess(_flat(result, s), 0, 1) for s in sites]
        return float(np.nanmin(np.concatenate(values))), "bulk"
    log_weight = result.sample_stats.get("log_weight")
    if log_weight is None or not np.all(np.isfinite(log_weight)) or draws < 2:
        return float(draws), "draws"
    total = 0.0
    for chain in np.asarray(log_weight, dtype=np.float64):
        # psislw smooths the log-ratios -ary and returns normalised log-weights.
        smoothed, _ = array_stats.psislw(-chain)
        total += 1.0 / float(np.sum(np.exp(2.0 * smoothed)))
    return total, "psis"


def _khat(result: InferenceResult) -> float:

    for finding in check(result):
        if finding.name == "pareto_khat":
            return float(finding.value)
    return float("nan")


def _wasserstein(reference: np.ndarray, other: np.ndarray) -> float:
    """Wasserstein-1 distance between the empirical marginals of two draw arrays.

    arviz-stats compares equally many draws from each side; the smaller sample is
    repeated (which leaves its empirical distribution unchanged) so that every draw
    of the larger one is used.
    """
    import arviz_stats as azs
    import xarray as xr

    size = int(max(reference.size, other.size))
    first, second = (
        xr.DataArray(
            np.tile(a.ravel(), -(-size // a.size))[None, :],
            dims=("chain", "draw"),
            name="x",
        )
        for a in (reference, other)
    )
    return float(
        azs.wasserstein(first, second, joint=False, num_samples=size, round_to="none")
    )


def compare(
    results: Sequence[InferenceResult] | Mapping[str, InferenceResult],
    reference: int | str | None = None,
    *,
    var_names: str | Sequence[str] | None = None,
) -> Comparison:
    r"""Compare the marginal posteriors of several methods, parameter by parameter.

    For each scalar component :math:`\theta_j` of the sites shared by all results
    and each method :math:`m`, with reference mean :math:`\mu_j` and sd
    :math:`\sigma_j`:

    .. math::

        \text{mean\_gap} = \frac{\bar\theta_j^{(m)} - \mu_j}{\sigma_j}, \quad
        \text{sd\_gap} = \frac{s_j^{(m)} - \sigma_j}{\sigma_j}, \quad
        \text{wasserstein} = \frac{W_1(p_j^{(m)}, p_j^{\text{ref}})}{\sigma_j}.

    :math:`W_1` is :func:`arviz_stats.wasserstein` between the marginals' empirical
    distributions (all draws of both results). Between two exact methods
    the gaps are Monte Carlo error: the mean gap has sd about
    :math:`\sqrt{1/\text{ESS}_m + 1/\text{ESS}_\text{ref}}`.

    Parameters
    ----------
    results : sequence or mapping of InferenceResult
        Fits of the same model. A list is labelled by method names (repeats
        numbered ``"svi"``, ``"svi-2"``); a mapping by its keys.
    reference : int or str, optional
        The result to measure gaps from: an index or label. By default the first
        result whose method is NUTS, HMC or Gibbs.
    var_names : str or sequence of str, optional
        Sites to compare; by default every numeric site shared by all results.

    Returns
    -------
    Comparison
        ``.table`` (a DataFrame indexed by parameter and method) and
        ``.to_markdown()``.

    Examples
    --------
    >>> comparison = pgm.compare([nuts_result, laplace_result])  # doctest: +SKIP
    >>> comparison.table.loc[("mu", "laplace"), "mean_gap"]  # doctest: +SKIP
    """
    import pandas as pd

    labelled = label_results(results, "compare")
    ref_label = _reference_label(labelled, reference)
    sites = _shared_sites(labelled, ref_label, var_names)
    ref = labelled[ref_label]
    per_method = {}
    for label, result in labelled.items():
        ess, kind = _ess(result, sites)
        seconds = float(result.timings.get("total", float("nan")))
        per_method[label] = {
            "time_s": seconds,
            "ess": ess,
            "ess_kind": kind,
            "ess_per_s": ess / seconds if seconds > 0 else float("nan"),
            "khat": _khat(result),
        }
    rows, index = [], []
    for site in sites:
        ref_draws = _flat(ref, site)
        for j, parameter in enumerate(_component_labels(ref, site)):
            ref_values = ref_draws[..., j]
            ref_mean, ref_sd = float(np.mean(ref_values)), _sd(ref_values)
            for label, result in labelled.items():
                values = _flat(result, site)[..., j]
                mean, sd = float(np.mean(values)), _sd(values)
                scale = ref_sd if ref_sd > 0 else float("nan")
                distance = (
                    0.0 if label == ref_label else _wasserstein(ref_values, values)
                )
                index.append((parameter, label))
                rows.append(
                    {
                        "mean": mean,
                        "sd": sd,
                        "mean_gap": (mean - ref_mean) / scale,
                        "sd_gap": (sd - ref_sd) / scale,
                        "wasserstein": distance / scale,
                        **per_method[label],
                    }
                )
    table = pd.DataFrame(
        rows, index=pd.MultiIndex.from_tuples(index, names=["parameter", "method"])
    )
    return Comparison(table=table, reference=ref_label)


def _sd(values: np.ndarray) -> float:
    return float(np.std(values, ddof=1)) if values.size > 1 else 0.0
