"""VAE training speed on a CPU: NumPyro (this package) against Pyro on PyTorch.

One workload: the Bernoulli VAE of ``numpyro_pgm.models.vae`` on the binarised
UCI digits (1,797 images of 64 pixels; the first 1,408 = 11 batches of 128 are
used), encoder 64 -> 256 (ReLU) -> 2 x 8 (means and softplus scales), decoder
8 -> 256 (ReLU) -> 64 logits, z ~ N(0, I_8), analytic KL
(``TraceMeanField_ELBO``), Adam with step size 1e-3, minibatches of 128 drawn by
a fresh permutation every epoch, ``num_epochs`` epochs. Each variant runs in a
fresh process, variants interleaved within each repeat, medians over repeats:

- ``pgm-train``: ``numpyro_pgm.models.vae_training.train`` as a user runs it
  (epochs compiled as one ``lax.scan``, plus the ELBO of every training image
  after each epoch, which the others do not compute);
- ``numpyro-svi``: the same model and guide with ``numpyro.infer.SVI``, one
  ``jax.jit``-compiled ``lax.scan`` per epoch and nothing else;
- ``pyro``: the same architecture in Pyro (``pyro.infer.SVI`` with
  ``TraceMeanField_ELBO``, ``pyro.optim.Adam``, ``pyro.plate`` with
  ``subsample_size``), one ``svi.step`` per minibatch, run by the Python given
  with ``--peer-python`` (a venv with ``torch`` and ``pyro-ppl``). Pyro's argument
  validation is turned off, as NumPyro skips it inside ``jit``;
- ``pyro-1-thread``: the same with ``torch.set_num_threads(1)``: on a loaded
  two-core machine PyTorch's default intra-op threads spin against each other.

Metrics: steps per second after the first epoch (so JAX compilation is not in
it), the seconds from the start of the process to the end of the first epoch
(imports, and compilation for JAX), the total seconds of the process, and the
training ELBO per image over the last epoch, and the test ELBO per image after
the last epoch on the 389 held-out digits (analytic KL, 100 draws of z per image;
computed after the timed epochs, counted in the total only): a check that all
learn the same thing in the same number of epochs, not a speed measure. Ratios are
to ``numpyro-svi``.

Run: ``python benchmarks/vae_pyro.py --repeats 3 --peer-python PYTHON`` (writes
``benchmarks/results/vae.md``; the peer venv: ``python3.12 -m venv
/tmp/pyro-venv && /tmp/pyro-venv/bin/pip install torch==2.13.0 pyro-ppl``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

START = time.perf_counter()
ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("numpyro-svi", "pgm-train")
PEER_VARIANTS = ("pyro", "pyro-1-thread")
LATENT_DIMS, HIDDEN, BATCH, NUM_IMAGES, LEARNING_RATE = 8, 256, 128, 1408, 1e-3
TEST_DRAWS = 100  # draws of z per held-out image for the test ELBO


def load_images(test: bool = False):
    """Binarised digits as a float32 array (numpy only, for both environments).

    The first ``NUM_IMAGES`` train; the rest (389) are held out for the test ELBO.
    """
    import numpy as np

    with gzip.open(ROOT / "numpyro_pgm" / "data" / "digits.csv.gz", "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", skiprows=1)
    rows = slice(NUM_IMAGES, None) if test else slice(None, NUM_IMAGES)
    return (table[rows, :64] / 16.0 > 0.5).astype(np.float32)


def run_jax(variant: str, num_epochs: int) -> dict:
    import jax
    import numpy as np
    import optax
    from numpyro.infer import SVI, TraceMeanField_ELBO
    from numpyro.optim import optax_to_numpyro
    from numpyro_pgm.models import vae, vae_evaluation, vae_training

    x = load_images()
    networks = vae.init_networks(
        jax.random.key(0), num_pixels=64, latent_dims=LATENT_DIMS, hidden_size=HIDDEN
    )
    stamps = []
    if variant == "pgm-train":
        result = vae_training.train(
            jax.random.key(1),
            x,
            networks=networks,
            num_epochs=num_epochs,
            batch_size=BATCH,
            learning_rate=LEARNING_RATE,
            callback=lambda info: stamps.append(time.perf_counter()),
            progress_bar=False,
        )
        last_elbo = -float(result.step_loss[-1].mean())
        params = result.params
    else:
        svi = SVI(
            vae.model,
            vae.guide,
            optax_to_numpyro(optax.adam(LEARNING_RATE)),
            TraceMeanField_ELBO(),
        )
        kwargs = {"networks": networks, "num_images": len(x)}
        state = svi.init(jax.random.key(1), x[:BATCH], **kwargs)

        @jax.jit
        def epoch(state, rng_key, images):
            order = jax.random.permutation(rng_key, len(images))
            batches = images[order].reshape(-1, BATCH, images.shape[1])
            return jax.lax.scan(lambda s, b: svi.update(s, b, **kwargs), state, batches)

        images = jax.numpy.asarray(x)
        for e in range(num_epochs):
            state, losses = epoch(state, jax.random.key(e), images)
            losses.block_until_ready()
            stamps.append(time.perf_counter())
        last_elbo = -float(np.mean(losses)) / len(x)
        params = svi.get_params(state)
    test_elbo = vae_evaluation.elbo(
        jax.random.key(2),
        params,
        load_images(test=True),
        networks=networks,
        num_samples=TEST_DRAWS,
    )
    return _record(stamps, last_elbo, float(test_elbo.mean()))


def run_pyro(num_epochs: int, num_threads: int | None) -> dict:
    import pyro
    import pyro.distributions as dist
    import torch
    from pyro.infer import SVI, TraceMeanField_ELBO
    from torch import nn

    if num_threads is not None:
        torch.set_num_threads(num_threads)

    pyro.enable_validation(False)
    pyro.set_rng_seed(0)
    x = torch.from_numpy(load_images())

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden, self.out = nn.Linear(64, HIDDEN), nn.Linear(HIDDEN, 16)

        def forward(self, x):
            out = self.out(torch.relu(self.hidden(x)))
            loc, raw = out[:, :LATENT_DIMS], out[:, LATENT_DIMS:]
            return loc, nn.functional.softplus(raw) + 1e-4

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden, self.out = (
                nn.Linear(LATENT_DIMS, HIDDEN),
                nn.Linear(HIDDEN, 64),
            )

        def forward(self, z):
            return self.out(torch.relu(self.hidden(z)))

    encoder, decoder = Encoder(), Decoder()

    def model(batch):
        pyro.module("decoder", decoder)
        with pyro.plate("image", len(x), subsample_size=len(batch)):
            prior = dist.Normal(torch.zeros(LATENT_DIMS), 1.0).to_event(1)
            z = pyro.sample("z", prior)
            logits = decoder(z)
            pyro.sample("x", dist.Bernoulli(logits=logits).to_event(1), obs=batch)

    def guide(batch):
        pyro.module("encoder", encoder)
        with pyro.plate("image", len(x), subsample_size=len(batch)):
            loc, scale = encoder(batch)
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    svi = SVI(
        model, guide, pyro.optim.Adam({"lr": LEARNING_RATE}), TraceMeanField_ELBO()
    )
    stamps = []
    for _ in range(num_epochs):
        losses = [svi.step(x[batch]) for batch in torch.randperm(len(x)).split(BATCH)]
        stamps.append(time.perf_counter())
    with torch.no_grad():
        x_test = torch.from_numpy(load_images(test=True))
        loc, scale = encoder(x_test)
        z = loc + scale * torch.randn(TEST_DRAWS, *loc.shape)
        log_lik = dist.Bernoulli(logits=decoder(z)).log_prob(x_test).sum(-1)
        kl = 0.5 * (loc**2 + scale**2 - 1 - 2 * torch.log(scale)).sum(-1)
        test_elbo = float((log_lik.mean(0) - kl).mean())
    return _record(stamps, -sum(losses) / len(losses) / len(x), test_elbo)


def _record(stamps: list[float], last_elbo: float, test_elbo: float) -> dict:
    steps_per_epoch = NUM_IMAGES // BATCH
    steady = (len(stamps) - 1) * steps_per_epoch / (stamps[-1] - stamps[0])
    return {
        "steps_per_s": steady,
        "first_epoch_s": stamps[0] - START,
        "total_s": time.perf_counter() - START,
        "last_epoch_elbo": last_elbo,
        "test_elbo": test_elbo,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num-epochs", type=int, default=40)
    parser.add_argument("--peer-python", default=None)
    parser.add_argument("--variant", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/vae.md"))
    args = parser.parse_args()
    if args.variant:
        if args.variant in PEER_VARIANTS:
            threads = 1 if args.variant == "pyro-1-thread" else None
            record = run_pyro(args.num_epochs, threads)
        else:
            record = run_jax(args.variant, args.num_epochs)
        print(json.dumps(record))
        return

    sys.path.insert(0, str(Path(__file__).parent))
    from harness import markdown_table, medians, run_variants

    variants = VARIANTS + (PEER_VARIANTS if args.peer_python else ())
    runs = run_variants(
        Path(__file__),
        variants,
        repeats=args.repeats,
        extra_args=("--num-epochs", str(args.num_epochs)),
        pythons={v: args.peer_python for v in PEER_VARIANTS},
    )
    rows = medians(runs)
    table = markdown_table(
        rows,
        [
            ("steps_per_s", "SVI steps/s", ".0f"),
            ("first_epoch_s", "start to first epoch (s)", ".1f"),
            ("total_s", "total (s)", ".1f"),
            ("last_epoch_elbo", "last-epoch ELBO", ".2f"),
            ("test_elbo", "test ELBO", ".2f"),
        ],
        baseline="numpyro-svi",
        ratio_of=("steps_per_s", "total_s"),
    )
    versions = subprocess.run(
        [
            sys.executable,
            "-c",
            "import jax, numpyro; print(f'jax {jax.__version__}, numpyro "
            "{numpyro.__version__}')",
        ],
        capture_output=True,
        text=True,
    ).stdout.strip()
    if args.peer_python:
        peer = subprocess.run(
            [
                args.peer_python,
                "-c",
                "import torch, pyro; print(f'torch {torch.__version__}, pyro "
                "{pyro.__version__}')",
            ],
            capture_output=True,
            text=True,
        ).stdout.strip()
        versions += f"; {peer}"
    text = "\n".join(
        [
            "# VAE: SVI speed against Pyro",
            "",
            __doc__.split("\n\n", 1)[1].rsplit("\n\nRun:", 1)[0],
            "",
            f"Medians of {args.repeats} interleaved repeats, {args.num_epochs} epochs "
            f"of {NUM_IMAGES // BATCH} steps; {platform.processor() or 'CPU'}, "
            f"{versions}; load average {os.getloadavg()[0]:.1f} on "
            f"{os.cpu_count()} cores at the end.",
            "",
            table,
            "",
            f"Reproduce: `python benchmarks/vae_pyro.py --repeats {args.repeats} "
            f"--num-epochs {args.num_epochs} --peer-python /tmp/pyro-venv/bin/python`.",
            "",
        ]
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
