#!/usr/bin/env bash
# Fills .gpu-check/ (git-ignored) with what benchmarks/gpu_check.sh needs on a GPU
# machine that reaches no package registry, so that it travels with the working tree:
# wheels of the packages that machine lacks (its Python 3.12 on x86-64 Linux already
# has torch, torchvision, lightning, scikit-learn, scipy, numpy and pillow), and
# Fashion-MNIST's four IDX files from Debian's dataset-fashion-mnist.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
FASHION_MNIST=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
# The versions the benchmarks were measured with; kornia_rs is kornia's one dependency
# that the GPU machine lacks.
PACKAGES=(kornia==0.9.0 kornia_rs==0.2.0 openTSNE==1.0.4 tsimcne==0.3.12)
LIMIT_MIB=64  # what may travel with the working tree, in all

rm -rf .gpu-check/wheels
# openTSNE's wheels are tagged manylinux_2_24/2_28 only, kornia_rs's manylinux2014.
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
    -d .gpu-check/wheels "${PACKAGES[@]}"

mkdir -p .gpu-check/fashion-mnist
for name in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte \
            t10k-labels-idx1-ubyte; do
    if [ ! -f "$FASHION_MNIST/$name.gz" ]; then
        echo "$FASHION_MNIST/$name.gz is missing: apt-get install dataset-fashion-mnist," \
             "or set FASHION_MNIST to the folder of the four files" >&2
        exit 1
    fi
    cp "$FASHION_MNIST/$name.gz" .gpu-check/fashion-mnist/
done

# The tree that travels: tracked files, untracked files git does not ignore, .gpu-check.
tree_bytes() {
    # du skips (and complains about) tracked files deleted here.
    git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- 2>/dev/null |
        tail -1 | cut -f1
}
tree=$(tree_bytes || true)
check=$(du -sb .gpu-check | cut -f1)
du -b .gpu-check/wheels/* .gpu-check/fashion-mnist/* |
    awk '{printf "%8.1f MiB  %s\n", $1 / 2^20, $2}'
awk -v t="$tree" -v c="$check" -v l="$LIMIT_MIB" 'BEGIN {
    printf ".gpu-check %.1f MiB + working tree %.1f MiB = %.1f MiB of %d MiB\n",
        c / 2^20, t / 2^20, (t + c) / 2^20, l
    exit (t + c > l * 2^20) }' || { echo "too large to travel" >&2; exit 1; }
