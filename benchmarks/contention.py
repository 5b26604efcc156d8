"""Training throughput on a busy machine: alone, and beside one and two CPU-bound processes.

Each measurement is a fresh process that takes real training steps (by
default the CPU default backbone's step on Fashion-MNIST-sized images, batch
64) while 0, 1 and 2 other processes run a Python busy loop.  Settings of the
process (``--settings``):

* ``library``: as ``fit`` trains: imports ``napari_tsimcne`` before torch,
  as every entry point does, so that torch's OpenMP threads wait as
  ``napari_tsimcne/__init__.py`` sets it, and steps under a
  :class:`~napari_tsimcne.threads.ThreadGovernor`, which runs them on one
  thread while that is faster;
* ``spinning``: imports torch first, so OpenMP keeps its default (GNU
  OpenMP: a waiting thread spins for about 300,000 rounds, then sleeps);
* ``passive``: ``OMP_WAIT_POLICY=PASSIVE`` (waiting threads sleep at once),
  on all threads (the library before the governor);
* ``spin-N``: ``GOMP_SPINCOUNT=N`` (spin N rounds, then sleep);
* ``one-thread``: as ``library``, with one torch thread (``OMP_NUM_THREADS=1``).

With ``--governed all``, every setting but ``one-thread`` steps under the
thread governor (the wait policies as they would work inside the library).
``--work embedding`` times forward passes without gradients instead, as
``transform`` and the feature caches run them (under the governor too).

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
if sys.argv[1] not in ("library", "one-thread"):
    import torch  # before the library: OpenMP keeps the policy of the environment
import napari_tsimcne
import torch
from napari_tsimcne.augmentation import make_augmentation
from napari_tsimcne.loss import CauchyInfoNCELoss
from napari_tsimcne.network import TSimCNENetwork
from napari_tsimcne.threads import ThreadGovernor
from napari_tsimcne.trainer import Accelerations, training_step

backbone, batch, steps, size = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
images = torch.randint(0, 256, (4 * batch, 1, size, size), dtype=torch.uint8)
augment = make_augmentation("natural", 1, (size, size))
network = TSimCNENetwork(backbone, 1, 128).train()
accelerations = Accelerations.for_device(torch.device("cpu"), backbone=backbone)
accelerations.prepare(network)
optimizer = accelerations.optimizer(network.parameters(), 0.03, 0.9, 5e-4)
loss_fn = CauchyInfoNCELoss()

governed = sys.argv[1] == "library" or (sys.argv[6] == "all" and sys.argv[1] != "one-thread")
governor = ThreadGovernor(torch.get_num_threads() if governed else 1)

def training():
    with governor.step():
        training_step(network, images[torch.randperm(4 * batch)[:batch]], augment, loss_fn,
                      optimizer, accelerations)


def embedding():  # as transform embeds: no gradients
    with torch.no_grad(), governor.step():
        network.eval()(images[torch.randperm(4 * batch)[:2 * batch]].float() / 255)


step = training if sys.argv[7] == "training" else embedding

for _ in range(5):
    step()
start = time.perf_counter()
for _ in range(steps):
    step()
print(2 * batch * steps / (time.perf_counter() - start))
'''


def views_per_second(setting: str, competitors: int, args) -> float:
    """Throughput of a fresh process in ``setting`` beside ``competitors`` busy loops."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    if setting == "passive":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    elif setting.startswith("spin-"):
        env["GOMP_SPINCOUNT"] = setting.removeprefix("spin-")
    elif setting == "one-thread":
        env["OMP_NUM_THREADS"] = "1"
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(competitors)]
    try:
        time.sleep(0.5)
        result = subprocess.run(
            [sys.executable, "-c", WORKER, setting, args.backbone, str(args.batch_size),
             str(args.steps), str(args.size), args.governed, args.work],
            env=env, capture_output=True, text=True, check=True)
        return float(result.stdout.strip().splitlines()[-1])
    finally:
        for process in busy:
            process.kill()
            process.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet10-w16")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--size", type=int, default=28, help="image side in pixels")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--settings", nargs="+", default=["library", "spinning"],
                        help="library, spinning, passive, spin-N or one-thread (see above)")
    parser.add_argument("--governed", default="library", choices=["library", "all"],
                        help="settings whose steps run under the thread governor: the "
                             "library's only, or all but one-thread")
    parser.add_argument("--work", default="training", choices=["training", "embedding"],
                        help="training steps, or forward passes of 2b images as transform "
                             "runs them (views per second counts those images)")
    parser.add_argument("--loads", nargs="+", type=int, default=[0, 1, 2],
                        help="numbers of busy processes beside the training")
    parser.add_argument("--name", default="contention")
    args = parser.parse_args()
    for setting in args.settings:
        if setting not in ("library", "spinning", "passive", "one-thread") and not (
                setting.startswith("spin-") and setting[5:].isdigit()):
            parser.error(f"unknown setting {setting!r}: use library, spinning, passive, "
                         "spin-N or one-thread")

    settings, loads = args.settings, args.loads
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
            print(f"{setting:>12}, {competitors} busy: {median:7.0f} views/s, "
                  f"{median / quiet:.0%} of quiet")
    write_json(args.name, {"args": vars(args), "rows": rows})


if __name__ == "__main__":
    main()
