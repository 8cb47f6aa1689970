"""The one result type every inference method returns, and its storage.

An :class:`InferenceResult` is immutable data: NumPy arrays (read-only) grouped as
ArviZ groups, plus the method, its settings and timings. ``to_datatree`` turns it
into an ``xarray.DataTree`` that every ArviZ function accepts; ``save``/``load``
round-trip it exactly through netCDF, written atomically.
"""

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # xarray is imported where it is used (about 0.3 s)
    import xarray as xr

__all__ = ["InferenceResult", "load"]

SAMPLE_GROUPS = (
    "posterior",
    "sample_stats",
    "log_likelihood",
    "prior",
    "prior_predictive",
    "posterior_predictive",
)
DATA_GROUPS = ("observed_data", "constant_data", "learned_params")
GROUP_ORDER = SAMPLE_GROUPS + DATA_GROUPS
_FORMAT_VERSION = 1


def _frozen_array(value: Any) -> np.ndarray:
    array = np.array(value, copy=True)
    array.flags.writeable = False
    return array


def _frozen_group(group: Mapping[str, Any]) -> Mapping[str, np.ndarray]:
    return MappingProxyType({str(k): _frozen_array(v) for k, v in group.items()})


def _json_ready(value: Any) -> Any:
    """Return ``value`` as it reads back from JSON, or raise ``TypeError``."""
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if callable(value):
        return getattr(value, "__name__", type(value).__name__)
    return repr(value)


@dataclass(frozen=True)
class InferenceResult:
    """Draws, statistics and provenance of one inference run.

    Attributes
    ----------
    method : str
        ``"nuts"``, ``"hmc"``, ``"gibbs"``, ``"laplace"``, ``"map"`` or ``"svi"``.
    groups : Mapping[str, Mapping[str, numpy.ndarray]]
        ArviZ groups by name. Sample groups (``posterior``, ``sample_stats``,
        ``log_likelihood``, ``prior``, ``prior_predictive``,
        ``posterior_predictive``) hold arrays shaped ``(chain, draw, *site)``
        (``sample_stats`` may also hold per-chain or per-step arrays, see
        ``dims``); ``observed_data`` and ``constant_data`` hold plain arrays;
        ``learned_params`` holds parameters fitted by SVI (guide and model
        ``numpyro.param`` sites), one leading axis per restart.
        For optimisation and variational methods, ``chain`` counts independent
        restarts.
    dims : Mapping[str, Mapping[str, tuple of str]]
        Full dimension names of every variable of every group, including
        ``chain`` and ``draw``; plate names become dimension names.
    coords : Mapping[str, numpy.ndarray]
        Coordinate values by dimension name.
    settings : Mapping[str, Any]
        The method's configuration (JSON-compatible), as run.
    timings : Mapping[str, float]
        Wall-clock seconds: ``total`` always; methods add their phases.
    """

    method: str
    groups: Mapping[str, Mapping[str, np.ndarray]]
    dims: Mapping[str, Mapping[str, tuple[str, ...]]]
    coords: Mapping[str, np.ndarray] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    timings: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        groups = {
            name: _frozen_group(self.groups[name])
            for name in GROUP_ORDER
            if name in self.groups and self.groups[name]
        }
        unknown = set(self.groups) - set(GROUP_ORDER)
        if unknown:
            raise ValueError(
                f"groups has unknown group(s) {sorted(unknown)}; "
                f"allowed: {GROUP_ORDER}."
            )
        dims = {
            group: MappingProxyType(
                {
                    var: tuple(self.dims.get(group, {}).get(var, ()))
                    or _default_dims(group, var, array)
                    for var, array in variables.items()
                }
            )
            for group, variables in groups.items()
        }
        object.__setattr__(self, "groups", MappingProxyType(groups))
        object.__setattr__(self, "dims", MappingProxyType(dims))
        object.__setattr__(
            self,
            "coords",
            MappingProxyType({k: _frozen_array(v) for k, v in self.coords.items()}),
        )
        object.__setattr__(
            self, "settings", MappingProxyType(_json_ready(dict(self.settings)))
        )
        object.__setattr__(
            self,
            "timings",
            MappingProxyType({k: float(v) for k, v in self.timings.items()}),
        )

    # -- convenient views ---------------------------------------------------------
    @property
    def samples(self) -> Mapping[str, np.ndarray]:
        """Posterior draws per site, shaped ``(chain, draw, *site)``."""
        return self.groups.get("posterior", MappingProxyType({}))

    @property
    def sample_stats(self) -> Mapping[str, np.ndarray]:
        """Per-draw (and per-chain) statistics of the method."""
        return self.groups.get("sample_stats", MappingProxyType({}))

    @property
    def log_likelihood(self) -> Mapping[str, np.ndarray]:
        """Pointwise log-likelihood per observed site, ``(chain, draw, *obs)``."""
        return self.groups.get("log_likelihood", MappingProxyType({}))

    @property
    def num_chains(self) -> int:
        """The number of chains (or independent restarts)."""
        return int(np.shape(next(iter(self.samples.values())))[0])

    @property
    def num_draws(self) -> int:
        """The number of draws per chain."""
        return int(np.shape(next(iter(self.samples.values())))[1])

    def __repr__(self) -> str:
        sites = ", ".join(
            f"{k}{tuple(np.shape(v)[2:])}" for k, v in self.samples.items()
        )
        return (
            f"InferenceResult(method={self.method!r}, chains={self.num_chains}, "
            f"draws={self.num_draws}, sites=[{sites}], "
            f"time={self.timings.get('total', float('nan')):.2f}s)"
        )

    # -- conversion -----------------------------------------------------------------
    def to_datatree(self) -> "xr.DataTree":
        """Return the result as an ArviZ ``DataTree``.

        Returns
        -------
        xarray.DataTree
            One child per group; the root attributes hold the method, settings and
            timings (as JSON), so :func:`load` can rebuild the result.
        """
        import xarray as xr

        children = {}
        for group, variables in self.groups.items():
            data_vars = {
                var: (self.dims[group][var], np.asarray(array))
                for var, array in variables.items()
            }
            used = {d for dims in self.dims[group].values() for d in dims}
            coords = {d: np.asarray(v) for d, v in self.coords.items() if d in used}
            for dim in sorted(used - set(coords)):
                # Every dimension gets coordinates (integers by default), which
                # arviz-plots needs to select and facet.
                coords[dim] = np.arange(_dim_size(dim, self.dims[group], variables))
            children[group] = xr.Dataset(data_vars, coords=coords)
        tree = xr.DataTree.from_dict(children)
        tree.attrs.update(
            {
                "inference_library": "numpyro",
                "creation_library": "numpyro_pgm",
                "numpyro_pgm_format": _FORMAT_VERSION,
                "method": self.method,
                "settings": json.dumps(dict(self.settings), sort_keys=True),
                "timings": json.dumps(dict(self.timings), sort_keys=True),
            }
        )
        return tree

    @classmethod
    def from_datatree(cls, tree: "xr.DataTree") -> "InferenceResult":
        """Rebuild a result from :meth:`to_datatree` output (or a loaded file)."""
        if tree.attrs.get("creation_library") != "numpyro_pgm":
            raise ValueError(
                "this DataTree was not written by numpyro_pgm (its attrs lack "
                "creation_library='numpyro_pgm'); load ArviZ files with "
                "`xarray.open_datatree` instead."
            )
        groups, dims, coords = {}, {}, {}
        for name, node in tree.children.items():
            dataset = node.to_dataset()
            groups[name] = {v: dataset[v].values for v in dataset.data_vars}
            dims[name] = {v: tuple(dataset[v].dims) for v in dataset.data_vars}
            for dim, coord in dataset.coords.items():
                if not _is_default_range(coord):
                    coords[dim] = coord.values
        return cls(
            method=str(tree.attrs["method"]),
            groups=groups,
            dims=dims,
            coords=coords,
            settings=json.loads(tree.attrs["settings"]),
            timings=json.loads(tree.attrs["timings"]),
        )

    # -- storage ----------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the result to a netCDF file, atomically.

        The file is written next to ``path`` under a temporary name and renamed into
        place only when complete, so an interrupted save never leaves a half-written
        file.

        Parameters
        ----------
        path : str or path-like
            Destination, conventionally ending in ``.nc``.

        Returns
        -------
        pathlib.Path
            The path written.
        """
        path = Path(path)
        if not path.parent.exists():
            raise ValueError(
                f"cannot save to {str(path)!r}: the folder {str(path.parent)!r} does "
                "not exist. Create it first (e.g. `Path(...).mkdir(parents=True)`)."
            )
        handle, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
        )
        os.close(handle)
        try:
            self.to_datatree().to_netcdf(temporary, engine="netcdf4")
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path


def load(path: str | os.PathLike) -> InferenceResult:
    """Read a result written by :meth:`InferenceResult.save`.

    Parameters
    ----------
    path : str or path-like
        A ``.nc`` file written by ``save``.

    Returns
    -------
    InferenceResult
        The result, identical to the one saved.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no saved result at {str(path)!r}: the file does not exist.")
    import xarray as xr

    try:
        with xr.open_datatree(path, engine="netcdf4") as tree:
            tree = tree.load()
    except (OSError, ValueError) as error:
        raise ValueError(
            f"{str(path)!r} is not a saved numpyro_pgm result (netCDF could not read "
            f"it: {error})."
        ) from error
    return InferenceResult.from_datatree(tree)


def _default_dims(group: str, var: str, array: Any) -> tuple[str, ...]:
    ndim = np.ndim(array)
    if group == "learned_params":
        return ("chain",) + tuple(f"{var}_dim_{i}" for i in range(ndim - 1))
    if group in SAMPLE_GROUPS:
        lead = ("chain", "draw")[: min(ndim, 2)]
        return lead + tuple(f"{var}_dim_{i}" for i in range(ndim - len(lead)))
    return tuple(f"{var}_dim_{i}" for i in range(ndim))


def _dim_size(dim: str, dims: Mapping[str, tuple[str, ...]], variables) -> int:
    for var, var_dims in dims.items():
        if dim in var_dims:
            return int(np.shape(variables[var])[var_dims.index(dim)])
    raise KeyError(dim)


def _is_default_range(coord: "xr.DataArray") -> bool:
    values = coord.values
    return values.dtype.kind in "iu" and np.array_equal(values, np.arange(values.size))
