"""Same data, parameters and random_state on a CPU: the same embedding, bit for bit."""

import hashlib
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

# Every test here trains real networks, in fresh processes.
pytestmark = pytest.mark.slow


RUN = textwrap.dedent("""
    import hashlib, sys
    import torch
    sys.path.insert(0, {tests!r})
    from conftest import FAST_PARAMS, make_class_images
    from napari_tsimcne import TSimCNE
    torch.set_num_threads(int(sys.argv[1]))
    embedding = TSimCNE(**FAST_PARAMS).fit_transform(make_class_images()[0])
    print(hashlib.sha256(embedding.tobytes()).hexdigest())
""")


def digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def test_two_fits_in_one_process_are_identical(images, make_estimator):
    first = make_estimator().fit_transform(images)
    second = make_estimator().fit_transform(images)
    assert digest(first) == digest(second)
    assert digest(make_estimator(random_state=1).fit_transform(images)) != digest(first)


def run_in_new_process(threads: int) -> str:
    script = RUN.format(tests=os.path.dirname(__file__))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    return subprocess.run([sys.executable, "-c", script, str(threads)], env=env,
                          capture_output=True, text=True, timeout=300, check=True).stdout.strip()


def test_fits_in_separate_processes_are_identical(images, make_estimator):
    in_this_process = digest(make_estimator().fit_transform(images))  # one thread (conftest)
    assert [run_in_new_process(1), run_in_new_process(1)] == [in_this_process] * 2
    two_threads = run_in_new_process(2)
    assert run_in_new_process(2) == two_threads
