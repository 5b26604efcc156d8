"""Shared helpers of the benchmark scripts: machine description and JSON output."""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import sys
from pathlib import Path

import torch

RESULTS_DIR = Path(__file__).parent / "results"


def machine() -> dict:
    """What the numbers were measured on."""
    info = {
        "date": datetime.date.today().isoformat(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    try:
        with open("/proc/cpuinfo") as file:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in file if "model name" in line)
    except (OSError, StopIteration):
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
    return info


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_json(name: str, result: dict, folder=RESULTS_DIR) -> Path:
    """Write ``result`` with the machine description to ``folder/NAME.json``.

    The command line that ran is recorded as ``"command"`` unless ``result``
    gives its own.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    command = "python " + " ".join(sys.argv)
    path.write_text(json.dumps({"machine": machine(), "command": command, **result}, indent=2)
                    + "\n")
    print(f"wrote {path}")
    return path
