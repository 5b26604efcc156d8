"""The GPU check (benchmarks/gpu_check.sh): its dry run on the CPU, and its time limits."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from napari_tsimcne.datasets import FASHION_MNIST_DIR

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_check  # noqa: E402  (a script's module, importable once benchmarks/ is on the path)

@pytest.mark.slow
@pytest.mark.skipif(
    not (FASHION_MNIST_DIR.is_dir() or (gpu_check.TRAVELLING / "fashion-mnist").is_dir()),
    reason="Fashion-MNIST is not here (apt-get install dataset-fashion-mnist)")
def test_dry_run_takes_every_step_at_toy_size_and_records_it(tmp_path):
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run"],
                            env={**os.environ, "OUT": str(tmp_path), "OMP_NUM_THREADS": "1"},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((tmp_path / "gpu_check.json").read_text())

    steps = summary["steps"]
    assert list(steps) == ["setup", *gpu_check.STEPS]
    assert steps["tests"]["status"] == ("passed" if torch.cuda.is_available() else "skipped")
    cuda_tests = (Path(__file__).parent / "test_cuda.py").read_text().count("\ndef test_")
    assert len(steps["tests"]["outcomes"]) == cuda_tests
    assert all(steps[name]["status"] == "passed" for name in gpu_check.STEPS[1:])
    assert set(summary["throughput"]) == {"2x4", "2x16"}
    for rows in summary["throughput"].values():
        assert {"resnet10-w8 bf16", "resnet10-w8 fp32"} <= set(rows)
        assert all(row["views_per_s"] > 0 and row["max_memory_mib"] > 0 for row in rows.values())
    assert summary["quality"]["n_train"] == 512
    assert 0 <= summary["quality"]["knn_accuracy"] <= 1
    assert "held-out kNN(15)" in result.stdout
    # At most 8 files come back from the GPU machine.
    assert len(list(tmp_path.iterdir())) <= 8


@pytest.mark.slow
def test_a_step_that_hangs_is_stopped_at_its_limit_with_its_children(tmp_path):
    pid_file = tmp_path / "child.pid"
    start = time.monotonic()
    step = gpu_check.run_step("hang", ["bash", "-c", f"sleep 60 & echo $! > {pid_file}; wait"],
                              limit_s=2, env=dict(os.environ), log_path=tmp_path / "log")

    assert step["status"] == "timed out" and step["returncode"] is None
    assert time.monotonic() - start < 10
    child = int(pid_file.read_text())
    for _ in range(50):  # SIGKILL is delivered asynchronously
        if not running(child):
            break
        time.sleep(0.1)
    assert not running(child)


def test_a_failing_step_is_reported_with_its_output(tmp_path, capsys):
    step = gpu_check.run_step("fail", ["bash", "-c", "echo what went wrong; exit 3"], limit_s=10,
                              env=dict(os.environ), log_path=tmp_path / "log")

    assert step["status"] == "failed" and step["returncode"] == 3
    assert "what went wrong" in capsys.readouterr().out
    assert "what went wrong" in (tmp_path / "log").read_text()


def running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie waiting to be reaped (Linux)."""
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
