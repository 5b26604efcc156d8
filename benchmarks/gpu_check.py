"""The GPU check: proves the CUDA path and records its figures, in at most 8 minutes.

    bash benchmarks/gpu_check.sh            # on a machine with a CUDA GPU
    bash benchmarks/gpu_check.sh --dry-run  # every step at toy size on the CPU
    bash benchmarks/gpu_check.sh --steps quality  # some steps again

Steps, each in a process group of its own with a time limit, so that one
that hangs leaves the others their time:

1. ``setup``: kornia, openTSNE and the reference tsimcne, where missing, are
   installed from the wheels in ``.gpu-check/wheels`` without a registry
   (``benchmarks/prepare_gpu_check.sh`` puts them there);
2. ``tests``: ``tests/test_cuda.py`` (accelerated steps, compile, a GPU model
   on the CPU, ``device="auto"``, the distributed step with NCCL);
3. ``throughput_b256``, ``throughput_b1024``: benchmark 1 (``throughput.py``),
   ResNet-18 on 32 x 32 RGB, ours in bf16 and fp32, each without and with
   ``torch.compile``, against the reference in the same run;
4. ``quality``: ``quality.py`` on all of Fashion-MNIST (60,000 training,
   10,000 held-out images, from ``.gpu-check/fashion-mnist`` where present),
   the paper's recipe planned into the time that is left.

The dry run takes the same steps on the CPU at toy size, without
compilation (minutes of C++ builds on a CPU); the CUDA tests report
themselves skipped.  Every step's JSON, the test report, the log and
``gpu_check.json`` (all figures and the steps' outcomes) go to ``$OUT`` where
set, else to ``benchmarks/results/`` (``benchmarks/results/dry-run/`` for a
dry run); a summary table is printed at the end.  ``max_memory_mib`` there
is ``torch.cuda.max_memory_allocated`` on a GPU and the peak RSS on the CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from xml.etree import ElementTree

from _common import RESULTS_DIR, write_json

ROOT = Path(__file__).resolve().parent.parent
TRAVELLING = ROOT / ".gpu-check"
#: The whole check from its first step to the summary: 8 minutes less a few
#: seconds for starting Python and importing torch.
TOTAL_S = 470
#: Longest run of each step; a step never runs past the whole check's end.
LIMITS_S = {"setup": 60, "tests": 120, "throughput_b256": 140, "throughput_b1024": 150}
#: Seconds kept for the summary at the end, and the least a step is started with.
SUMMARY_S, MIN_STEP_S = 10, 10
#: Quality: at most this much training, the rest of its time for starting,
#: reading the data, placing the held-out images and the kNN.
QUALITY_TRAIN_S, QUALITY_OVERHEAD_S, QUALITY_MIN_TRAIN_S = 180, 50, 45
STEPS = ("tests", "throughput_b256", "throughput_b1024", "quality")
#: What the steps write, removed first so that no earlier run's file is read.
OUTPUTS = ("gpu_check.json", "gpu_check_tests.xml", "throughput_gpu_b256.json",
           "throughput_gpu_b1024.json", "quality_gpu_fmnist.json")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true",
                        help="every step at toy size on the CPU")
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=STEPS,
                        help="run only these steps (default: all; setup runs always)")
    args = parser.parse_args()
    deadline = time.monotonic() + TOTAL_S
    out = Path(os.environ.get("OUT") or RESULTS_DIR / ("dry-run" if args.dry_run else ""))
    out.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:
        (out / name).unlink(missing_ok=True)
    log_path = out / "gpu_check.log"
    log_path.write_text("")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"),
                                                       os.environ.get("PYTHONPATH")]))}

    def run(name, command, limit_s=None):
        limit_s = min(limit_s or LIMITS_S[name], deadline - time.monotonic() - SUMMARY_S)
        if limit_s < MIN_STEP_S:
            return {"status": "no time left", "note": f"{limit_s:.0f} s left"}
        return run_step(name, command, limit_s, env, log_path)

    steps = {"setup": setup(env, run)}
    reference = all(importlib.util.find_spec(m) for m in ("tsimcne", "lightning"))
    if "tests" in args.steps:
        steps["tests"] = run("tests", [
            sys.executable, "-m", "pytest", "tests/test_cuda.py", "-rA", "-p", "no:cacheprovider",
            f"--junitxml={out / 'gpu_check_tests.xml'}"])
        steps["tests"].update(test_outcomes(out / "gpu_check_tests.xml"))
        if steps["tests"]["status"] == "skipped" and not args.dry_run:
            steps["tests"]["status"] = "failed"  # they skip only where no GPU is seen
    for batch_size in (256, 1024):
        name = f"throughput_b{batch_size}"
        if name in args.steps:
            steps[name] = run(name, throughput_command(batch_size, args.dry_run, reference, out))
            steps[name]["note"] = "; ".join(
                ["reference not installed: ours alone"] * (not reference)
                + ["no compile in a dry run"] * args.dry_run)
    if "quality" in args.steps:
        steps["quality"] = quality(run, args.dry_run, out, deadline)

    figures = collect_figures(out)
    write_json("gpu_check", {"dry_run": args.dry_run, "steps": steps, **figures}, out)
    print_summary(steps, figures)
    sys.exit(any(step["status"] in ("failed", "timed out", "no time left")
                 for step in steps.values()))


def run_step(name: str, command: list[str], limit_s: float, env: dict, log_path: Path) -> dict:
    """Run ``command`` in the repository with its output appended to the log."""
    print(f"{name}: running, at most {limit_s:.0f} s", flush=True)
    with open(log_path, "a") as log:
        log.write(f"\n=== {name} (at most {limit_s:.0f} s): {' '.join(command)}\n")
        log.flush()
        offset = log.tell()
        start = time.monotonic()
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            returncode = process.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            returncode = None
        # The step's own children too: torchrun's workers, the reference's DataLoader workers.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        seconds = time.monotonic() - start
    status = "timed out" if returncode is None else "failed" if returncode else "passed"
    print(f"{name}: {status} in {seconds:.0f} s", flush=True)
    if status != "passed":
        with open(log_path) as log:
            log.seek(offset)
            print("".join(log.readlines()[-40:]), flush=True)
    return {"status": status, "seconds": round(seconds, 1), "limit_s": round(limit_s),
            "returncode": returncode, "command": " ".join(command)}


def setup(env: dict, run) -> dict:
    """Install the travelling wheels of the packages that are not installed."""
    wheels = [wheel for wheel in sorted(TRAVELLING.glob("wheels/*.whl"))
              if not installed(wheel.name.split("-")[0])]
    if not wheels:
        return {"status": "passed", "note": "nothing to install"}
    site = tempfile.mkdtemp(prefix="gpu-check-site-")
    step = run("setup", [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                         "--no-compile", "--no-cache-dir", "--target", site, *map(str, wheels)])
    env["PYTHONPATH"] = os.pathsep.join([site, env["PYTHONPATH"]])
    sys.path.insert(0, site)
    importlib.invalidate_caches()
    return {**step, "note": f"installed {', '.join(w.name.split('-')[0] for w in wheels)}"}


def installed(distribution: str) -> bool:
    try:
        importlib.metadata.distribution(distribution)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def throughput_command(batch_size: int, dry_run: bool, reference: bool, out: Path) -> list[str]:
    if dry_run:
        size = ["--backbones", "resnet10-w8", "--batch-size", str(batch_size // 64), "--size",
                "16", "--rounds", "1", "--steps-per-round", "2", "--device", "cpu",
                "--reference-workers", "2"]
    else:
        # 16 steps a round: twice the reference's 8 workers, for its steady state.
        size = ["--backbones", "resnet18", "--batch-size", str(batch_size), "--size", "32",
                "--rounds", "3", "--steps-per-round", "16", "--device", "cuda",
                "--compile", "off", "on"]
    return [sys.executable, "benchmarks/throughput.py", "--channels", "3",
            "--precisions", "bf16", "fp32", *size, *(["--reference"] if reference else []),
            "--name", f"throughput_gpu_b{batch_size}", "--out", str(out)]


def quality(run, dry_run: bool, out: Path, deadline: float) -> dict:
    """The quality run, its training budget fitted into the time left."""
    left_s = deadline - time.monotonic() - SUMMARY_S
    budget_s = 15 if dry_run else min(QUALITY_TRAIN_S, left_s - QUALITY_OVERHEAD_S)
    if budget_s < QUALITY_MIN_TRAIN_S and not dry_run:
        return {"status": "no time left", "note": f"{left_s:.0f} s left"}
    if dry_run:
        size = ["--device", "cpu", "--n-train", "512", "--n-test", "128",
                "--backbone", "resnet10-w8", "--batch-size", "64"]
    else:
        size = ["--device", "cuda", "--n-train", "60000", "--n-test", "10000",
                "--backbone", "resnet18", "--batch-size", "1024"]
    data = TRAVELLING / "fashion-mnist"
    return run("quality", [
        sys.executable, "benchmarks/quality.py", *size, "--recipe", "paper",
        # The paper's crops and head (napari_tsimcne.heads.PAPER_HIDDEN_DIM), as the
        # reference trains.
        "--crop-scale", "0.2", "1", "--hidden-dim", "1024",
        "--budget-minutes", f"{budget_s / 60:.3f}", *(["--data-dir", str(data)] if data.is_dir()
                                                      else []),
        "--name", "quality_gpu_fmnist", "--out", str(out)], budget_s + QUALITY_OVERHEAD_S)


def test_outcomes(report: Path) -> dict:
    """Each test's outcome from pytest's JUnit report; ``skipped`` if every test skipped."""
    if not report.is_file():
        return {}
    outcomes = {}
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        outcomes[case.get("name")] = next((child.tag for child in case if child.tag in (
            "failure", "error", "skipped")), "passed")
    counts = {kind: list(outcomes.values()).count(kind) for kind in sorted(set(outcomes.values()))}
    result = {"outcomes": outcomes, "note": ", ".join(f"{n} {kind}" for kind, n in counts.items())}
    if outcomes and set(outcomes.values()) == {"skipped"}:
        result["status"] = "skipped"
    return result


def collect_figures(out: Path) -> dict:
    """The figures of benchmark 1 and of the quality run, from the steps' JSON files."""
    figures = {"throughput": {}}
    for batch_size in (256, 1024):
        path = out / f"throughput_gpu_b{batch_size}.json"
        if not path.is_file():
            continue
        result = json.loads(path.read_text())
        # Views = 2 x images; a dry run's batches are smaller than the names say.
        ratios = result.get("ratio_ours_over_reference", {})
        rows = {**result["backbones"], **({"reference": result["reference"]}
                                          if "reference" in result else {})}
        figures["throughput"][f"2x{result['batch_views'] // 2}"] = {name: {
            "views_per_s": row["views_per_s"],
            "max_memory_mib": row.get("cuda_max_allocated_mib", row["peak_rss_mib"]),
            "ours_over_reference": ratios.get(name),
            "ours_over_reference_steady": result.get(
                "ratio_ours_over_reference_steady", {}).get(name),
        } for name, row in rows.items()}
    path = out / "quality_gpu_fmnist.json"
    if path.is_file():
        result = json.loads(path.read_text())
        row, run_args = result["rows"]["t-SimCNE"], result["args"]
        epoch_s = row["median_epoch_s_per_stage"][0]
        views = 2 * (run_args["n_train"] // run_args["batch_size"]) * run_args["batch_size"]
        figures["quality"] = {
            "knn_accuracy": row["knn_accuracy"], "epochs": row["epochs"],
            "train_s": row["train_s"], "pretraining_epoch_s": epoch_s,
            "pretraining_views_per_s": views / epoch_s if epoch_s else None,
            "n_train": run_args["n_train"], "n_test": run_args["n_test"]}
    return figures


def print_summary(steps: dict, figures: dict) -> None:
    print(f"\n{'step':<18}{'status':<11}{'seconds':>8}{'limit':>7}  note")
    for name, step in steps.items():
        print(f"{name:<18}{step['status']:<11}{step.get('seconds', 0):>8.0f}"
              f"{step.get('limit_s', '-'):>7}  {step.get('note', '')}")
    if figures["throughput"]:
        print(f"\n{'batch':<8}{'candidate':<26}{'views/s':>10}{'max MiB':>10}{'/ reference':>13}")
        for batch, rows in figures["throughput"].items():
            for name, row in rows.items():
                ratio = row["ours_over_reference"]
                print(f"{batch:<8}{name:<26}{row['views_per_s']:>10.0f}"
                      f"{row['max_memory_mib']:>10.0f}{f'{ratio:.2f}x' if ratio else '':>13}")
    if "quality" in figures:
        q = figures["quality"]
        speed = (f", pre-training epoch {q['pretraining_epoch_s']:.1f} s "
                 f"({q['pretraining_views_per_s']:.0f} views/s)" if q["pretraining_epoch_s"]
                 else "")
        print(f"\nquality: held-out kNN(15) {q['knn_accuracy']:.3f} ({q['n_train']} / "
              f"{q['n_test']} images), epochs {tuple(q['epochs'])} in {q['train_s']:.0f} s{speed}")


if __name__ == "__main__":
    main()
