"""Batched augmentation speed: kornia (per-sample parameters in one call) versus
torchvision's v2 transforms (one parameter draw per call, so a loop over images).

Both apply SimCLR's set (random resized crop 0.2-1, horizontal flip, colour
jitter 0.4/0.4/0.4/0.1 with p=0.8, grayscale p=0.2) to a float batch in [0, 1];
timed in alternation, median over rounds.

    python benchmarks/augmentation.py --batch-size 512 --size 32 --channels 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torchvision.transforms import v2

from _common import write_json
from napari_tsimcne.augmentation import make_augmentation
from napari_tsimcne.defaults import PAPER_CROP_SCALE


def torchvision_per_image(size: int, channels: int):
    steps = [v2.RandomResizedCrop(size, scale=PAPER_CROP_SCALE, antialias=True),
             v2.RandomHorizontalFlip()]
    if channels == 3:
        steps += [v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), v2.RandomGrayscale(0.2)]
    else:
        steps += [v2.RandomApply([v2.ColorJitter(0.4, 0.4)], p=0.8)]
    transform = v2.Compose(steps)
    return lambda batch: torch.stack([transform(image) for image in batch])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    batch = torch.rand(args.batch_size, args.channels, args.size, args.size, device=args.device)
    candidates = {
        "kornia (batched)": make_augmentation("natural", args.channels, (args.size, args.size),
                                              crop_scale=PAPER_CROP_SCALE),
        "torchvision v2 (per image)": torchvision_per_image(args.size, args.channels),
    }
    times = {name: [] for name in candidates}
    for augment in candidates.values():
        augment(batch)  # warm-up
    for _ in range(args.rounds):
        for name, augment in candidates.items():
            start = time.perf_counter()
            augment(batch)
            if batch.is_cuda:
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    rows = {name: {"median_ms": 1000 * statistics.median(t),
                   "images_per_s": args.batch_size / statistics.median(t)} for name, t in times.items()}
    for name, row in rows.items():
        print(f"{name:>28}: {row['median_ms']:8.1f} ms per batch, {row['images_per_s']:9.0f} images/s")
    kornia, loop = (rows[name]["median_ms"] for name in candidates)
    print(f"kornia is {loop / kornia:.1f}x faster")
    write_json(f"augmentation_{args.device}_{args.channels}x{args.size}", {
        "command": f"python benchmarks/augmentation.py --batch-size {args.batch_size} "
                   f"--size {args.size} --channels {args.channels} --device {args.device}",
        "rows": rows, "speedup_kornia_over_torchvision": loop / kornia})


if __name__ == "__main__":
    main()
