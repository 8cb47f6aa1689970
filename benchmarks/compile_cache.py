"""Time to the first result of a case study on a cold and on a warm compilation cache.

``numpyro-pgm run CASE_STUDY --quick`` in a fresh process, first with an empty JAX
persistent compilation cache (cold), then again with the cache it filled (warm);
repeated with a new empty cache each time; medians and the cold/warm ratio.

Run: ``python benchmarks/compile_cache.py [--case-study NAME] [--repeats 3]``
(writes its table into ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from harness import write_section  # noqa: E402


def run_once(case_study: str, cache: Path, out_dir: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "numpyro_pgm.cli",
            "--cache-dir",
            str(cache),
            "run",
            case_study,
            "--quick",
            "--out-dir",
            str(out_dir),
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case-study", default="logistic_breast_cancer")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cold, warm = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as folder:
            cache, out_dir = Path(folder) / "cache", Path(folder) / "out"
            cold.append(run_once(args.case_study, cache, out_dir))
            warm.append(run_once(args.case_study, cache, out_dir))
    cold_median, warm_median = statistics.median(cold), statistics.median(warm)
    body = (
        f"`numpyro-pgm run {args.case_study} --quick`, fresh process each time, "
        f"medians of {args.repeats} (a new empty cache per repeat).\n\n"
        "| cache | seconds to the result |\n|---|---|\n"
        f"| cold (empty) | {cold_median:.1f} |\n| warm (filled by the cold run) | "
        f"{warm_median:.1f} |\n| ratio cold / warm | {cold_median / warm_median:.2f} |"
    )
    write_section(
        Path(__file__).with_name("RESULTS.md"), "Compilation cache: cold and warm", body
    )
    print(body)


if __name__ == "__main__":
    main()
