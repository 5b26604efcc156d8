"""The demo as a user runs it: wall time of the whole command and the kNN accuracy it prints.

Runs ``napari-tsimcne demo`` in a fresh process ``--repeats`` times, with seeds
0, 1, ..., and reads the ``summary.json`` each run writes.

    python benchmarks/demo.py --repeats 3
    python benchmarks/demo.py --repeats 3 --dataset digits
    python benchmarks/demo.py --repeats 3 --env OMP_WAIT_POLICY=PASSIVE
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import write_json


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--dataset", default="shapes")
    parser.add_argument("--name", help="result file name (default: demo_DATASET)")
    parser.add_argument("--env", nargs="+", default=[], metavar="KEY=VALUE",
                        help="environment variables of the demo's process")
    args = parser.parse_args()
    environment = {**os.environ, **dict(setting.split("=", 1) for setting in args.env)}
    runs = []
    for seed in range(args.repeats):
        with tempfile.TemporaryDirectory() as out:
            command = [sys.executable, "-m", "napari_tsimcne.cli", "demo", "--quiet",
                       "--dataset", args.dataset, "--out", out, "--seed", str(seed)]
            start = time.perf_counter()
            subprocess.run(command, check=True, env=environment)
            summary = json.loads((Path(out) / "summary.json").read_text())
            summary["command_wall_s"] = time.perf_counter() - start
            runs.append(summary)
    median = statistics.median(run["command_wall_s"] for run in runs)
    accuracy = statistics.median(run["knn_accuracy"] for run in runs)
    pixel_accuracy = statistics.median(run["pixel_tsne_knn_accuracy"] for run in runs)
    print(f"demo ({args.dataset}): median wall time {median:.0f} s, median kNN accuracy "
          f"{accuracy:.3f} (" + ", ".join(f"{run['knn_accuracy']:.3f}" for run in runs) + "), "
          f"openTSNE on pixels {pixel_accuracy:.3f}")
    write_json(args.name or f"demo_{args.dataset}", {
        "median_command_wall_s": median, "median_knn_accuracy": accuracy,
        "median_pixel_tsne_knn_accuracy": pixel_accuracy, "runs": runs})


if __name__ == "__main__":
    main()
