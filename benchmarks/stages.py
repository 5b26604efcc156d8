"""Where a short CPU schedule loses quality: backbone features versus the 2-D stages.

``pretrain`` trains the first stage only (128-D output) on the first
``--n-train`` Fashion-MNIST training images, saves the network, and reports the
kNN accuracy (k=15) of the held-out images in the backbone features H and in an
openTSNE map of H.  ``two-d`` loads that network and runs the readout and
fine-tuning stages with the given settings, reporting the held-out kNN accuracy
of the 2-D map after each stage.  This separates the two questions "are the
features good enough?" and "does the 2-D map keep them?".

    python benchmarks/stages.py pretrain --backbone resnet10-w16 --epochs 100 --network w16.pt
    python benchmarks/stages.py two-d --backbone resnet10-w16 --network w16.pt --readout 5 --finetune 15 --finetune-lr 0.001
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import write_json

from napari_tsimcne.augmentation import make_augmentation
from napari_tsimcne.data import DeviceImages, as_image_stack, fit_intensity_range, to_uint8_tensor
from napari_tsimcne.datasets import load_fashion_mnist
from napari_tsimcne.estimator import _set_channel_statistics
from napari_tsimcne.metrics import knn_accuracy, pixel_tsne_baseline
from napari_tsimcne.network import TSimCNENetwork
from napari_tsimcne.schedule import Stage
from napari_tsimcne.trainer import Accelerations, embed, train

CPU = torch.device("cpu")


class HeldOutAccuracy:
    """Callback: kNN accuracy of the held-out images' map after every stage."""

    def __init__(self, network, test_images, y_train, y_test):
        self.network, self.test_images = network, test_images
        self.y_train, self.y_test = y_train, y_test
        self.accuracies = []

    def __call__(self, stage, epoch, loss):
        return False

    def on_stage_end(self, stage, embedding):
        test = embed(self.network, self.test_images.chunks(256), device=CPU)
        self.accuracies.append(knn_accuracy(embedding, self.y_train, test, self.y_test))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["pretrain", "two-d"])
    parser.add_argument("--network", required=True, help="file of the pre-trained network")
    parser.add_argument("--backbone", default="resnet10-w16")
    parser.add_argument("--n-train", type=int, default=5000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=100, help="pre-training epochs")
    parser.add_argument("--lr", type=float, default=0.12, help="pre-training and readout")
    parser.add_argument("--readout", type=int, default=5, help="readout epochs")
    parser.add_argument("--finetune", type=int, default=15, help="fine-tuning epochs")
    parser.add_argument("--finetune-lr", type=float, default=0.12 / 1000)
    parser.add_argument("--precision", default="fp32", choices=["auto", "bf16", "fp32"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--name", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    x_train, y_train = load_fashion_mnist("train")
    x_test, y_test = load_fashion_mnist("test")
    x_train, y_train = x_train[: args.n_train], y_train[: args.n_train]
    x_test, y_test = x_test[: args.n_test], y_test[: args.n_test]
    stack = as_image_stack(x_train)
    intensity_range = fit_intensity_range(stack)
    images = DeviceImages(to_uint8_tensor(stack, intensity_range, (28, 28)))
    test_images = DeviceImages(to_uint8_tensor(as_image_stack(x_test), intensity_range, (28, 28)))
    augment = make_augmentation("natural", 1, (28, 28))
    accelerations = Accelerations.for_device(CPU, args.precision)
    network = TSimCNENetwork(args.backbone, 1, 128)
    torch.manual_seed(0)
    start = time.perf_counter()
    result = {"args": vars(args)}
    if args.mode == "pretrain":
        _set_channel_statistics(network, images)
        stages = [Stage("pre-training", args.epochs, 128, args.lr, min(10, args.epochs / 10),
                        anneal=True)]
        result["losses"] = train(network, images, stages, augment, batch_size=args.batch_size,
                                 accelerations=accelerations)[0].tolist()
        torch.save(network.state_dict(), args.network)
        h_train = embed(network, images.chunks(256), output="features", device=CPU)
        h_test = embed(network, test_images.chunks(256), output="features", device=CPU)
        result["knn_H"] = knn_accuracy(h_train, y_train, h_test, y_test)
        tsne_train, tsne_test = pixel_tsne_baseline(h_train, h_test, n_jobs=args.threads)
        result["knn_openTSNE_of_H"] = knn_accuracy(tsne_train, y_train, tsne_test, y_test)
    else:
        network.load_state_dict(torch.load(args.network, weights_only=True))
        stages = [Stage("readout", args.readout, 2, args.lr, 0, anneal=False, readout_only=True,
                        new_readout=True),
                  Stage("fine-tuning", args.finetune, 2, args.finetune_lr,
                        min(10, args.finetune / 10), anneal=True)]
        accuracy = HeldOutAccuracy(network, test_images, y_train, y_test)
        history = train(network, images, [s for s in stages if s.epochs], augment,
                        batch_size=args.batch_size, callbacks=[accuracy],
                        accelerations=accelerations)
        result["knn_after_stage"] = accuracy.accuracies
        result["final_losses"] = [float(h[-1]) for h in history]
    result["seconds"] = time.perf_counter() - start
    print({k: v for k, v in result.items() if k not in ("losses", "args")}, flush=True)
    write_json(args.name or f"stages_{args.mode}", result)


if __name__ == "__main__":
    main()
