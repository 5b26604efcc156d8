"""Training throughput: views per second of one optimiser step, per backbone.

Each step is the real training step (uint8 batch -> two batched augmentations
-> network -> Cauchy InfoNCE -> SGD), on random uint8 images.  Backbones are
timed in alternation, round after round, so that load from other processes
hits all of them alike; the median step time of each is reported.

    python benchmarks/throughput.py --backbones resnet18 resnet10-w32 --size 28 --channels 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from _common import peak_rss_mib, write_json
from napari_tsimcne.augmentation import make_augmentation
from napari_tsimcne.loss import CauchyInfoNCELoss
from napari_tsimcne.network import TSimCNENetwork
from napari_tsimcne.trainer import training_step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["resnet18"])
    parser.add_argument("--batch-size", type=int, default=256, help="images per step b (2b views)")
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--name", default="throughput")
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(0)
    images = torch.randint(0, 256, (4 * args.batch_size, args.channels, args.size, args.size),
                           dtype=torch.uint8, device=device)
    augment = make_augmentation("natural", args.channels, (args.size, args.size))
    loss_fn = CauchyInfoNCELoss()
    setups = {}
    for name in args.backbones:
        network = TSimCNENetwork(name, args.channels, 128).to(device).train()
        optimizer = torch.optim.SGD(network.parameters(), lr=0.03, momentum=0.9)
        setups[name] = (network, optimizer)

    def step(name, index):
        network, optimizer = setups[name]
        batch = images[(index % 4) * args.batch_size : (index % 4 + 1) * args.batch_size]
        start = time.perf_counter()
        training_step(network, batch, augment, loss_fn, optimizer)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for name in setups:  # warm-up
        step(name, 0)
    times = {name: [] for name in setups}
    for round_index in range(args.rounds):
        for name in setups:
            times[name].append(step(name, round_index))
    views = 2 * args.batch_size
    rows = {}
    for name, seconds in times.items():
        median = statistics.median(seconds)
        rows[name] = {"median_step_s": median, "views_per_s": views / median,
                      "step_times_s": seconds,
                      "parameters": sum(p.numel() for p in setups[name][0].parameters())}
        print(f"{name:>16}: {views / median:8.1f} views/s (median step {median:.3f} s)")
    write_json(args.name, {
        "command": "python benchmarks/throughput.py " + " ".join(
            f"--{k.replace('_', '-')} {' '.join(v) if isinstance(v, list) else v}"
            for k, v in vars(args).items()),
        "batch_views": views, "image": [args.channels, args.size, args.size],
        "peak_rss_mib": peak_rss_mib(), "backbones": rows,
    })


if __name__ == "__main__":
    main()
