"""Training throughput on a busy machine: alone, and beside one and two CPU-bound processes.

Each measurement is a fresh process that takes real training steps (the
CPU default backbone's step on Fashion-MNIST-sized images, batch 64) while
``--competitors`` other processes run a Python busy loop.  Two settings of
the process:

* ``library``: imports ``napari_tsimcne`` before torch, as every entry point
  does, which makes torch's OpenMP threads sleep while they wait
  (``OMP_WAIT_POLICY=PASSIVE``, see ``napari_tsimcne/__init__.py``);
* ``spinning``: imports torch first, so OpenMP keeps its spinning default
  (what the library did before).

Settings and competitor counts alternate round by round; medians over the
rounds are reported, with the ratio to the same setting's quiet throughput.

    python benchmarks/contention.py --rounds 3 --name contention_cpu
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from _common import write_json

WORKER = r'''
import sys, time
if sys.argv[1] == "spinning":
    import torch  # before the library: OpenMP keeps its default wait policy
import napari_tsimcne
import torch
from napari_tsimcne.augmentation import make_augmentation
from napari_tsimcne.loss import CauchyInfoNCELoss
from napari_tsimcne.network import TSimCNENetwork
from napari_tsimcne.trainer import Accelerations, training_step

backbone, batch, steps = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
images = torch.randint(0, 256, (4 * batch, 1, 28, 28), dtype=torch.uint8)
augment = make_augmentation("natural", 1, (28, 28))
network = TSimCNENetwork(backbone, 1, 128).train()
accelerations = Accelerations.for_device(torch.device("cpu"))
accelerations.prepare(network)
optimizer = accelerations.optimizer(network.parameters(), 0.03, 0.9, 5e-4)
loss_fn = CauchyInfoNCELoss()

def step():
    training_step(network, images[torch.randperm(4 * batch)[:batch]], augment, loss_fn,
                  optimizer, accelerations)

for _ in range(5):
    step()
start = time.perf_counter()
for _ in range(steps):
    step()
print(2 * batch * steps / (time.perf_counter() - start))
'''


def views_per_second(setting: str, competitors: int, args) -> float:
    """Throughput of a fresh process in ``setting`` beside ``competitors`` busy loops."""
    env = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(competitors)]
    try:
        time.sleep(0.5)
        result = subprocess.run(
            [sys.executable, "-c", WORKER, setting, args.backbone, str(args.batch_size),
             str(args.steps)], env=env, capture_output=True, text=True, check=True)
        return float(result.stdout.strip().splitlines()[-1])
    finally:
        for process in busy:
            process.kill()
            process.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet10-w16")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--name", default="contention")
    args = parser.parse_args()

    settings, loads = ("library", "spinning"), (0, 1, 2)
    samples = {(s, n): [] for s in settings for n in loads}
    for round_ in range(args.rounds):
        for competitors in loads:
            for setting in settings:
                value = views_per_second(setting, competitors, args)
                samples[setting, competitors].append(value)
                print(f"round {round_}: {setting}, {competitors} busy: {value:.0f} views/s",
                      flush=True)
    rows = []
    for setting in settings:
        quiet = statistics.median(samples[setting, 0])
        for competitors in loads:
            median = statistics.median(samples[setting, competitors])
            rows.append({"setting": setting, "competitors": competitors,
                         "views_per_s": median, "of_quiet": median / quiet,
                         "samples": samples[setting, competitors]})
            print(f"{setting:>9}, {competitors} busy: {median:7.0f} views/s, "
                  f"{median / quiet:.0%} of quiet")
    write_json(args.name, {"args": vars(args), "rows": rows})


if __name__ == "__main__":
    main()
