r"""Case study: a variational autoencoder for handwritten digits.

The 1,797 UCI handwritten digits (8 x 8 images with grey levels 0..16) are scaled
to :math:`[0, 1]` and binarised at 0.5, so each image is a vector of 64 bits and
the Bernoulli decoder of :mod:`numpyro_pgm.models.vae` is a genuine probability
mass function: every ELBO and importance-weighted bound below is a bound on the
log-probability, in nats, of a binary image. (Using the grey levels as Bernoulli
"targets" would give a cross-entropy that is not normalised over :math:`[0, 1]`,
the continuous-Bernoulli caveat.) The model is

.. math::

    z_n \sim \mathcal N(0, I_L), \qquad
    x_{nd} \mid z_n \sim \mathrm{Bernoulli}(\sigma(f_\theta(z_n)_d)),

with an amortised Gaussian encoder :math:`q_\phi(z \mid x) = \mathcal
N(\mu_\phi(x), \mathrm{diag}\,\sigma^2_\phi(x))`, both networks multilayer
perceptrons, trained by maximising the ELBO (seed ``003_02afaf35b30b64a9.txt``,
section 6.3, eqs. (6.6) and (6.15)) with SVI on shuffled minibatches. With the
default ``--loss meanfield_elbo`` the KL term is analytic and only the expected
reconstruction is estimated by the reparameterisation trick; ``--loss elbo``
estimates both by Monte Carlo, and ``--beta`` weights the KL (a
:math:`\beta`-VAE).

For each latent size (``--latent-dims``, default 2, 8 and 16) the script reports,
on a stratified 80/20 split:

* the training and test ELBO after every epoch;
* the test ELBO and the importance-weighted bound :math:`\mathcal L_K` on
  :math:`\log p_\theta(x)` (Burda et al.), with standard errors over images;
* the accuracy of a logistic regression on the encoder means
  :math:`\mu_\phi(x)`, the seed's "VAE embeddings as classifier features"
  (seed ``002_9628f16bcd0397bc.txt``, "VAEs for Classification"), against the
  same classifier on raw pixels, with all training labels and with only 10
  labels per class (the unlabelled images still train the VAE);
* reconstructions of test digits, images decoded from prior draws, a straight
  line in latent space between two test digits, and the latent map of the test
  digits coloured by class (for :math:`L > 2`, its first two principal
  components), with the decoded manifold for :math:`L = 2`;
* the project's standard report (:func:`numpyro_pgm.report`, in
  ``<out-dir>/diagnostics``) of each run as a ``method="svi"`` result
  (:mod:`numpyro_pgm.models.vae_result`): the ELBO of every SVI step, the checks
  (ELBO settled; Pareto :math:`\hat k` of the importance weights of the codes of
  three test digits) and the posterior summary of those codes.

One run with the defaults (300 epochs, 256 hidden units, seed 0; about three
minutes on two CPU cores) gave test ELBOs of -20.1, -18.3 and -18.2 nats per image
for :math:`L` = 2, 8 and 16, importance-weighted bounds (:math:`K = 1000`) of
-19.3, -17.2 and -17.1, and classification accuracies of 0.63, 0.91 and 0.92 on
the encoder means, against 0.90 on the 64 binary pixels the VAE sees and 0.96 on
the grey pixels, which hold information that binarising removed. The seed's
"comparable accuracy to raw pixels" holds for the binary pixels with eight
latent dimensions; with 10 labels per class the 8-dimensional codes (0.81) tie
the binary pixels (0.81) and trail the grey ones (0.89). The test ELBO levels off
after about 150 epochs while the training ELBO keeps rising: the decoder starts
to overfit 1,438 images.

Training checkpoints go to ``<out-dir>/checkpoints``: a run that is interrupted
picks up where it stopped when started again with the same flags (``--no-resume``
starts over). ``--quick`` trains only :math:`L = 2` for a few epochs, a smoke run
of well under a minute.

References
----------
.. [1] F. Tobar, *Probabilistic Generative Models*, lecture notes (2026), seed
   ``003_02afaf35b30b64a9.txt``, section 6.3 and Example 6.3.
.. [2] W. Rodriguez, *Learning Distributions with Variational Autoencoders* (2025),
   seed ``002_9628f16bcd0397bc.txt``: latent spaces, sampling, classification.
.. [3] Y. Burda, R. Grosse and R. Salakhutdinov, "Importance weighted
   autoencoders", ICLR (2016).
.. [4] E. Alpaydin and C. Kaynak, "Optical Recognition of Handwritten Digits",
   UCI Machine Learning Repository (1998), CC BY 4.0.
"""

import argparse
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import jax  # noqa: E402
import numpy as np  # noqa: E402
from numpyro_pgm.case_studies._outputs import fit_and_report, save_figures  # noqa: E402
from numpyro_pgm.case_studies._vae_figures import (  # noqa: E402
    plot_elbo_curves,
    plot_interpolation,
    plot_latent_manifold,
    plot_latent_map,
    plot_prior_samples,
    plot_reconstructions,
)
from numpyro_pgm.models import vae, vae_evaluation, vae_result, vae_training  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import numpyro_pgm as pgm  # noqa: E402
from numpyro_pgm import datasets  # noqa: E402

TEST_FRACTION = 0.2
SPLIT_SEED = 20240801
THRESHOLD = 0.5
FEW_LABELS = 10
FEW_LABEL_REPEATS = 10
DIAGNOSED_DIGITS = (0, 1, 7)  # codes drawn into each run's InferenceResult
QUICK = {"latent_dims": [2], "num_epochs": 30, "num_importance_samples": 100}


# ----------------------------------------------------------------------------- data


def load_data(split_seed: int = SPLIT_SEED) -> dict[str, Any]:
    """Load the digits, scale to [0, 1], binarise, and split 80/20 by class."""
    dataset = datasets.load("digits")
    grey = dataset.X.astype(np.float32) / 16.0
    rng = np.random.default_rng(split_seed)
    train, test = [], []
    for label in np.unique(dataset.y):
        members = rng.permutation(np.flatnonzero(dataset.y == label))
        num_test = int(round(TEST_FRACTION * members.size))
        test.append(members[:num_test])
        train.append(members[num_test:])
    train, test = np.sort(np.concatenate(train)), np.sort(np.concatenate(test))
    binary = vae.binarize(grey, THRESHOLD)
    return {
        "x_train": binary[train],
        "x_test": binary[test],
        "grey_train": grey[train],
        "grey_test": grey[test],
        "y_train": dataset.y[train],
        "y_test": dataset.y[test],
        "dataset": dataset,
        "split_seed": split_seed,
    }


# ------------------------------------------------------------------------------ fit


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    settings = {
        "latent_dims": list(dict.fromkeys(args.latent_dims)),
        "num_epochs": args.num_epochs,
        "num_importance_samples": args.num_importance_samples,
        "batch_size": args.batch_size,
        "hidden_size": args.hidden_size,
        "learning_rate": args.learning_rate,
        "loss": args.loss,
        "beta": args.beta,
    }
    if args.quick:
        settings.update(QUICK)
    return settings


def _diagnosed(y: np.ndarray) -> np.ndarray:
    """Return the first test image of each digit in DIAGNOSED_DIGITS (indices)."""
    return np.array([np.flatnonzero(y == digit)[0] for digit in DIAGNOSED_DIGITS])


def fit(args: argparse.Namespace) -> dict[str, Any]:
    data = load_data()
    settings = _settings(args)
    checkpoints = Path(args.out_dir) / "checkpoints"
    runs = {}
    for latent_dims in settings["latent_dims"]:
        key = jax.random.fold_in(jax.random.key(args.seed), latent_dims)
        init_key, train_key = jax.random.split(key)
        networks = vae.init_networks(
            init_key,
            num_pixels=64,
            latent_dims=latent_dims,
            hidden_size=settings["hidden_size"],
            image_shape=(8, 8),
        )
        start = time.perf_counter()
        result = vae_training.train(
            train_key,
            data["x_train"],
            networks=networks,
            num_epochs=settings["num_epochs"],
            batch_size=settings["batch_size"],
            x_test=data["x_test"],
            loss=settings["loss"],
            beta=settings["beta"],
            learning_rate=settings["learning_rate"],
            checkpoint_path=checkpoints / f"latent_{latent_dims}.npz",
            resume=not args.no_resume,
            progress_bar=not args.quick,
        )
        seconds = time.perf_counter() - start
        # The run as the project's InferenceResult (method "svi"): ELBO per step,
        # learned weights, and draws of the codes of one test digit per class
        # in DIAGNOSED_DIGITS, for pgm.check and pgm.report.
        inference = vae_result.inference_result(
            jax.random.fold_in(key, 3),
            result,
            data["x_test"][_diagnosed(data["y_test"])],
            settings={k: v for k, v in settings.items() if k != "latent_dims"},
            seconds=seconds,
        )
        runs[latent_dims] = {
            "result": result,
            "inference": inference,
            "networks": networks,
            "time": seconds,
            "eval_key": jax.random.fold_in(key, 1),
        }
    return {"data": data, "settings": settings, "runs": runs, "seed": args.seed}


# -------------------------------------------------------------------------- metrics


def _accuracy(train_features, y_train, test_features, y_test) -> float:
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    # One BLAS thread: these fits are tiny, and BLAS threads competing with
    # JAX's for two cores made them 50 times slower.
    with threadpool_limits(limits=1):
        classifier.fit(train_features, y_train)
        return float(classifier.score(test_features, y_test))


def _few_label_accuracy(train_features, y_train, test_features, y_test) -> float:
    rng = np.random.default_rng(0)
    scores = []
    for _ in range(FEW_LABEL_REPEATS):
        chosen = np.concatenate(
            [
                rng.choice(np.flatnonzero(y_train == label), FEW_LABELS, replace=False)
                for label in np.unique(y_train)
            ]
        )
        scores.append(
            _accuracy(train_features[chosen], y_train[chosen], test_features, y_test)
        )
    return float(np.mean(scores))


def _mean_and_se(values) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(values.size))


def _metrics(run: Mapping[str, Any], data: Mapping[str, Any], settings) -> dict:
    result, networks = run["result"], run["networks"]
    params, x_test = result.params, data["x_test"]
    elbo_key, bound_key = jax.random.split(run["eval_key"])
    elbo = vae_evaluation.elbo(
        elbo_key, params, x_test, networks=networks, num_samples=10
    )
    bound = vae_evaluation.importance_weighted_bound(
        bound_key,
        params,
        x_test,
        networks=networks,
        num_samples=settings["num_importance_samples"],
    )
    train_means = np.asarray(
        vae_evaluation.encode(params, data["x_train"], networks=networks)[0]
    )
    test_means = np.asarray(vae_evaluation.encode(params, x_test, networks=networks)[0])
    features = (train_means, data["y_train"], test_means, data["y_test"])
    return {
        "test_elbo": _mean_and_se(elbo),
        "iw_bound": _mean_and_se(bound),
        "accuracy": _accuracy(*features),
        "few_label_accuracy": _few_label_accuracy(*features),
        "train_means": train_means,
        "test_means": test_means,
    }


def _pixel_metrics(data: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    rows = {}
    for name, key in (("grey pixels", "grey"), ("binary pixels", "x")):
        features = (
            data[f"{key}_train"],
            data["y_train"],
            data[f"{key}_test"],
            data["y_test"],
        )
        rows[name] = {
            "accuracy": _accuracy(*features),
            "few_label_accuracy": _few_label_accuracy(*features),
        }
    return rows


# --------------------------------------------------------------------------- report


def _table(runs, metrics, pixel_rows, settings) -> list[str]:
    k = settings["num_importance_samples"]
    lines = [
        f"| features | test ELBO | IW bound (K={k}) | accuracy | accuracy, "
        f"{FEW_LABELS} labels/class | train time (s) |",
        "|---|---|---|---|---|---|",
    ]
    for latent_dims, values in metrics.items():
        elbo, bound = values["test_elbo"], values["iw_bound"]
        lines.append(
            f"| VAE means, L={latent_dims} | {elbo[0]:.2f} ± {elbo[1]:.2f} | "
            f"{bound[0]:.2f} ± {bound[1]:.2f} | {values['accuracy']:.3f} | "
            f"{values['few_label_accuracy']:.3f} | {runs[latent_dims]['time']:.1f} |"
        )
    for name, values in pixel_rows.items():
        lines.append(
            f"| {name} (64) | - | - | {values['accuracy']:.3f} | "
            f"{values['few_label_accuracy']:.3f} | - |"
        )
    return lines


def _summary(results, metrics, pixel_rows, figures) -> str:
    data, dataset, settings = (
        results["data"],
        results["data"]["dataset"],
        results["settings"],
    )
    lines = [
        "# Variational autoencoder: handwritten digits",
        "",
        f"Data: `{dataset.name}`, {len(data['y_train']) + len(data['y_test'])} "
        "images of 8 x 8 pixels, scaled to [0, 1] and binarised at "
        f"{THRESHOLD}. Licence: {dataset.license}.",
        f"Citation: {dataset.citation}",
        "",
        f"Split: stratified {1 - TEST_FRACTION:.0%}/{TEST_FRACTION:.0%} (seed "
        f"{data['split_seed']}): {len(data['y_train'])} training and "
        f"{len(data['y_test'])} test images.",
        f"Settings: {settings}, seed {results['seed']}.",
        "",
        "## Test set",
        "",
        *_table(results["runs"], metrics, pixel_rows, settings),
        "",
        "ELBO and importance-weighted (IW) bound: mean log-probability bound per "
        "binary test image in nats, ± its standard error over images (the ELBO "
        "with the analytic KL and 10 draws per image). The IW bound is the "
        "tighter one, log p(x) >= IW >= ELBO in expectation. Accuracy: "
        "logistic regression (standardised features) trained on all training "
        f"labels, or on {FEW_LABELS} per class (mean of {FEW_LABEL_REPEATS} random "
        "draws); the VAE itself never sees a label. Grey pixels hold more "
        "information than the binary images the VAE is trained on.",
        "",
        "## Figures",
        "",
        *[f"- `{name}`" for name in figures],
        "",
    ]
    return "\n".join(lines)


def report(results: Mapping[str, Any], out_dir: str | Path) -> dict[int, dict]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data, runs, settings = results["data"], results["runs"], results["settings"]
    metrics = {dims: _metrics(run, data, settings) for dims, run in runs.items()}
    pixel_rows = _pixel_metrics(data)
    figures = {
        "elbo_curves.png": plot_elbo_curves(runs),
        "reconstructions.png": plot_reconstructions(runs, data),
        "prior_samples.png": plot_prior_samples(runs),
        "interpolation.png": plot_interpolation(runs, data),
        "latent_map.png": plot_latent_map(runs, metrics, data),
    }
    if 2 in runs:
        figures["latent_manifold.png"] = plot_latent_manifold(runs[2])
    save_figures(figures, out_dir)
    summary = _summary(results, metrics, pixel_rows, figures)
    # The project's standard report, one per latent size (the codes differ in
    # size, so the runs are not compared site by site): the ELBO per SVI step,
    # the checks (ELBO settled, Pareto k-hat of the importance weights of the
    # codes of three test digits), and their posterior summary.
    links = []
    for latent_dims, run in runs.items():
        path = pgm.report(
            {f"L={latent_dims}": run["inference"]},
            out_dir / "diagnostics" / f"latent_{latent_dims}",
            title=f"VAE on digits, L={latent_dims}: diagnostics",
            var_names=["z"],
        )
        links.append(
            f"- L={latent_dims}: [{path.relative_to(out_dir)}]"
            f"({path.relative_to(out_dir)})"
        )
    summary += "\n".join(
        [
            "",
            "## Diagnostics",
            "",
            'Each run as a `method="svi"` InferenceResult '
            "(`numpyro_pgm.models.vae_result`): the ELBO of every SVI step, "
            "`pgm.check` (ELBO settled; Pareto k-hat of the importance weights "
            f"p(x, z) / q(z | x) of the codes of the test digits {DIAGNOSED_DIGITS}, "
            "drawn jointly) and the posterior summary of those codes:",
            "",
            *links,
            "",
        ]
    )
    (out_dir / "summary.md").write_text(summary)
    return {
        dims: {k: v for k, v in values.items() if not k.endswith("_means")}
        for dims, values in metrics.items()
    }


# ---------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="A VAE on the UCI handwritten digits: ELBO, importance-weighted "
        "bound, latent spaces and VAE features for classification."
    )
    parser.add_argument("--latent-dims", type=int, nargs="+", default=[2, 8, 16])
    parser.add_argument("--num-epochs", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--loss", choices=vae_training.LOSSES, default="meanfield_elbo")
    parser.add_argument("--beta", type=float, default=1.0, help="KL weight")
    parser.add_argument(
        "--num-importance-samples",
        type=int,
        default=1000,
        help="K for the importance-weighted bound",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default="results/vae_digits")
    parser.add_argument(
        "--no-resume",
        action="store_true",
        help="ignore checkpoints in <out-dir>/checkpoints and start over",
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"smoke-run settings: {QUICK}"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> dict[int, dict]:
    args = _parser().parse_args(argv)
    return fit_and_report(args, fit, report)


if __name__ == "__main__":
    main()
