"""Smoke test of the LDA docstring case study with --quick settings."""

import importlib.util
import re
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "case_studies" / "lda_docstrings.py"
FIGURES = ("elbo.png", "topics_by_module.png", "coherence.png")
METHODS = ("cavi", "cavi-vem", "svi-mean-field", "svi-amortised")


@pytest.fixture(scope="module")
def case_study():
    spec = importlib.util.spec_from_file_location("lda_docstrings", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_writes_figures_and_summary(case_study, tmp_path, capsys):
    metrics = case_study.main(["--quick", "--out-dir", str(tmp_path / "out")])
    out = tmp_path / "out"
    assert str(out) in capsys.readouterr().out
    for name in FIGURES:
        path = out / name
        assert path.exists() and path.stat().st_size > 1000, name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (out / "summary.md").read_text()
    assert "| method | held-out perplexity | mean NPMI |" in summary
    assert "BSD" in summary
    for method in METHODS:
        assert f"| {method} |" in summary and f"### {method}" in summary
    # K = 6 topics in the quick run: one table row per topic and method.
    assert len(re.findall(r"^\| 5 \| -?\d\.\d\d \| \w+", summary, re.M)) == len(METHODS)
    assert set(metrics) == set(METHODS)
    unigram = float(re.search(r"unigram model scores about (\d+)", summary)[1])
    for values in metrics.values():
        # Even a short run beats the unigram model on held-out tokens.
        assert 1.0 < values["perplexity"] < unigram
        assert 0.0 <= values["nmi"] <= 1.0
        assert values["coherence"].shape == (6,)
        assert ((values["coherence"] >= -1) & (values["coherence"] <= 1)).all()


def test_method_flag_selects_methods(case_study):
    # Parsing only: the quick run above already exercises every method.
    args = case_study._parser().parse_args(["--method", "cavi", "svi-amortised"])
    assert args.method == ["cavi", "svi-amortised"]
    assert case_study._parser().parse_args([]).method == list(METHODS)
