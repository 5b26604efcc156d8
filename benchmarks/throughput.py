"""Training throughput: views per second of one optimiser step, per backbone, optionally against the reference.

Our step is the real training step (a uint8 batch gathered by random indices
-> two batched augmentations -> network -> Cauchy InfoNCE -> SGD with momentum
0.9 and weight decay 5e-4) with the accelerations ``TSimCNE.fit`` uses on the
device and backbone (``--precisions``; on CPUs with native bf16: bf16
autocast; channels-last from width 16, or as ``--layouts`` says), optionally under ``torch.compile`` (``--compile off on``
times both), on random uint8 images.  ``--reference`` adds the
reference implementation, tsimcne 0.3.12, as one more candidate: its own
pipeline (per-image torchvision augmentation in DataLoader workers, its
ResNet-18, its loss, its Lightning loop) on random RGB images of the same size
and the same batch; ``benchmarks/reference.py`` says exactly what is timed.

Candidates are timed in alternation, round after round (round r: each
candidate in turn for ``--steps-per-round`` steps), so that load from other
processes hits all of them alike.  A round's step time is its wall time
divided by its steps; the median over rounds is reported, and with
``--reference`` the ratio of views per second, ours / reference.  Memory, per
candidate: the peak RSS of this process while it ran (Linux; elsewhere the
process-wide peak), for the reference also its workers' private memory, and on
CUDA ``torch.cuda.max_memory_allocated``.

    python benchmarks/throughput.py --backbones resnet18 resnet10-w32 --size 28 --channels 1

The paper's model (ResNet-18, 3x3 stem, 128-D head, b = 256) against the
reference, which needs ``pip install -e ".[reference]"``; run it for
``--size 28`` and ``--size 32``:

    python benchmarks/throughput.py --reference --backbones resnet18 --size 32 --channels 3 --rounds 5 --name throughput_reference_3x32

On a GPU add ``--device cuda --steps-per-round 24``: an epoch of at least
twice the reference's 8 workers keeps them all busy and yields its
pipelined steady-state figure as well (see ``benchmarks/reference.py``).
``benchmarks/gpu_check.py`` runs it that way for b = 256 and 1024.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import statistics
import time

import torch
from _common import RESULTS_DIR, peak_rss_mib, write_json

from napari_tsimcne.augmentation import make_augmentation
from napari_tsimcne.heads import PAPER_HIDDEN_DIM
from napari_tsimcne.loss import CauchyInfoNCELoss
from napari_tsimcne.network import TSimCNENetwork
from napari_tsimcne.trainer import Accelerations, training_step


class OurTraining:
    """Our training step for one backbone on a pool of ``4 b`` random uint8 images ``(C, size, size)``."""

    def __init__(self, backbone: str, batch_size: int, channels: int, size: int,
                 device: torch.device, precision: str = "auto", compile: bool = False,
                 layout: str = "auto"):
        self.device = device
        self.batch_size = batch_size
        self.images = torch.randint(0, 256, (4 * batch_size, channels, size, size),
                                    dtype=torch.uint8, device=device)
        self.augment = make_augmentation("natural", channels, (size, size))
        self.loss_fn = CauchyInfoNCELoss()
        # The paper's head, as the reference has it.
        self.network = TSimCNENetwork(backbone, channels, 128, PAPER_HIDDEN_DIM).to(device).train()
        # The speed-ups that TSimCNE.fit uses on this device and backbone, or
        # the memory layout that --layouts forces instead.
        self.accelerations = Accelerations.for_device(device, precision, compile, backbone)
        if layout != "auto":
            self.accelerations = dataclasses.replace(
                self.accelerations, channels_last=layout == "channels-last")
        self.accelerations.prepare(self.network)
        # As fit compiles it; the compilation happens in the first (warm-up) step.
        self.model = torch.compile(self.network) if compile else self.network
        # train()'s defaults; the learning rate does not change the cost of a step.
        self.optimizer = self.accelerations.optimizer(self.network.parameters(), 0.03, 0.9, 5e-4)
        self.parameters = sum(p.numel() for p in self.network.parameters())
        self.matmul_precision = torch.get_float32_matmul_precision()

    def run(self, n_steps: int) -> dict:
        """Take ``n_steps`` steps; ``step_s`` is their wall time over ``n_steps``."""
        start = time.perf_counter()
        for _ in range(n_steps):
            order = torch.randperm(len(self.images), device=self.device)
            training_step(self.model, self.images[order[: self.batch_size]], self.augment,
                          self.loss_fn, self.optimizer, self.accelerations)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return {"step_s": (time.perf_counter() - start) / n_steps}


def reset_peak_memory(device: torch.device) -> bool:
    """Start new peaks of RSS and CUDA memory; False if the RSS peak cannot be reset here."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        # "5" resets the VmHWM (peak RSS) of the process, Linux >= 4.0.
        with open("/proc/self/clear_refs", "w") as file:
            file.write("5")
        return True
    except OSError:
        return False


def peak_memory(device: torch.device) -> dict:
    """Peak RSS (MiB) since :func:`reset_peak_memory`, and on CUDA the peak allocated memory."""
    try:
        with open("/proc/self/status") as file:
            rss = int(re.search(r"VmHWM:\s+(\d+)", file.read()).group(1)) / 1024
    except (OSError, AttributeError):
        rss = peak_rss_mib()
    row = {"peak_rss_mib": rss}
    if device.type == "cuda":
        row["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return row


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces ``args``, flags included only when set."""
    parts = ["python benchmarks/throughput.py"]
    for key, value in vars(args).items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            parts += [flag] if value else []
        elif value is not None:
            parts += [flag, " ".join(value) if isinstance(value, list) else str(value)]
    return " ".join(parts)


def summarise(results: list[dict], views: int) -> dict:
    """Median over rounds of a candidate's ``run`` results, and its peak memory over rounds."""
    steps = [r["step_s"] for r in results]
    median = statistics.median(steps)
    row = {"median_step_s": median, "views_per_s": views / median, "step_times_s": steps}
    for key in ("peak_rss_mib", "cuda_max_allocated_mib", "workers_private_mib"):
        if key in results[0]:
            row[key] = max(r[key] for r in results)
    steady = [r["steady_step_s"] for r in results if r.get("steady_step_s") is not None]
    if steady:
        row["steady_step_s"] = statistics.median(steady)
        row["steady_views_per_s"] = views / row["steady_step_s"]
    if "batch_intervals_s" in results[0]:
        row["batch_intervals_s"] = [r["batch_intervals_s"] for r in results]
    return row


def report(name: str, row: dict) -> None:
    """Print a candidate's summary row."""
    memory = f"peak RSS {row['peak_rss_mib']:.0f} MiB"
    if "workers_private_mib" in row:
        memory += f" + workers {row['workers_private_mib']:.0f} MiB"
    if "cuda_max_allocated_mib" in row:
        memory += f", CUDA max allocated {row['cuda_max_allocated_mib']:.0f} MiB"
    print(f"{name:>24}: {row['views_per_s']:8.1f} views/s "
          f"(median step {row['median_step_s']:.3f} s), {memory}")
    if "steady_views_per_s" in row:
        print(f"{'':>24}  {row['steady_views_per_s']:8.1f} views/s in the pipelined steady state")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["resnet18"])
    parser.add_argument("--batch-size", type=int, default=256, help="images per step b (2b views)")
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps-per-round", type=int, default=None,
                        help="steps of each candidate per round (the reference: batches per "
                             "epoch); default 1, or 4 with --reference")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precisions", nargs="+", default=["auto"],
                        choices=["auto", "bf16", "fp32"],
                        help="our precision settings, as TSimCNE(precision=...); several are "
                             "timed as separate candidates")
    parser.add_argument("--layouts", nargs="+", default=["auto"],
                        choices=["auto", "contiguous", "channels-last"],
                        help="memory layouts of images and weights to time (auto: as fit "
                             "chooses for the device and backbone)")
    parser.add_argument("--compile", nargs="+", default=["off"], choices=["off", "on"],
                        help="ours without and/or with torch.compile, as TSimCNE(compile=...)")
    parser.add_argument("--reference", action="store_true",
                        help="also time tsimcne 0.3.12 (needs the 'reference' extra)")
    parser.add_argument("--reference-workers", type=int, default=None,
                        help="DataLoader workers of the reference (default: its own default, 8)")
    parser.add_argument("--name", default="throughput")
    parser.add_argument("--out", help="folder of the JSON file (default: benchmarks/results)")
    args = parser.parse_args()
    if args.reference and args.channels != 3:
        parser.error("--reference compares RGB pipelines: use --channels 3")
    if args.steps_per_round is None:
        # One batch per epoch would leave all of the reference's augmentation
        # to a single worker process.
        args.steps_per_round = 4 if args.reference else 1

    device = torch.device(args.device)
    torch.manual_seed(0)
    settings = [(name, precision, compile, layout) for name in args.backbones
                for precision in args.precisions for compile in args.compile
                for layout in args.layouts]
    ours = [" ".join([name] + [precision] * (len(args.precisions) > 1)
                     + ["compiled"] * (compile == "on") + [layout] * (len(args.layouts) > 1))
            for name, precision, compile, layout in settings]
    candidates = {
        label: OurTraining(name, args.batch_size, args.channels, args.size, device, precision,
                           compile == "on", layout)
        for label, (name, precision, compile, layout) in zip(ours, settings, strict=True)
    }
    if args.reference:
        from reference import DEFAULT_WORKERS, ReferenceTSimCNE

        args.reference_workers = args.reference_workers if args.reference_workers is not None \
            else DEFAULT_WORKERS
        candidates["reference"] = ReferenceTSimCNE(args.batch_size, args.size, device,
                                                   num_workers=args.reference_workers)

    rss_per_candidate = reset_peak_memory(device)

    def run(candidate, n_steps):
        # Each runs under its own float32 matmul precision: the reference sets
        # "medium" (TF32 on CUDA, bf16 in oneDNN on CPUs that have it).
        torch.set_float32_matmul_precision(candidate.matmul_precision)
        reset_peak_memory(device)
        return {**candidate.run(n_steps), **peak_memory(device)}

    for candidate in candidates.values():  # warm-up
        run(candidate, 1)
    results = {name: [] for name in candidates}
    for _ in range(args.rounds):
        for name, candidate in candidates.items():
            results[name].append(run(candidate, args.steps_per_round))

    views = 2 * args.batch_size
    rows = {}
    for name, candidate in candidates.items():
        rows[name] = {**summarise(results[name], views), "parameters": candidate.parameters,
                      "matmul_precision": candidate.matmul_precision}
        report(name, rows[name])
    output = {
        "command": command_line(args), "batch_views": views,
        "image": [args.channels, args.size, args.size], "steps_per_round": args.steps_per_round,
        "peak_rss_mib": peak_rss_mib(), "peak_rss_per_candidate": rss_per_candidate,
        "backbones": {name: rows[name] for name in ours},
    }
    if args.reference:
        reference = output["reference"] = {**rows["reference"], "workers": args.reference_workers}
        output["ratio_ours_over_reference"] = {
            name: rows[name]["views_per_s"] / reference["views_per_s"] for name in ours}
        if "steady_views_per_s" in reference:
            output["ratio_ours_over_reference_steady"] = {
                name: rows[name]["views_per_s"] / reference["steady_views_per_s"]
                for name in ours}
        for name, ratio in output["ratio_ours_over_reference"].items():
            steady = output.get("ratio_ours_over_reference_steady", {}).get(name)
            print(f"{name} / reference: {ratio:.2f}x views per second"
                  + (f" ({steady:.2f}x against its steady state)" if steady else ""))
    write_json(args.name, output, args.out or RESULTS_DIR)


if __name__ == "__main__":
    main()
