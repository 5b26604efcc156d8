"""Would other features of the same trained network map better than H?

Loads a model written by ``quality.py --save-model`` and scores, on the same
split, features that need no new training, each by held-out kNN accuracy
(k=15; test images classified among the training images) in the features
themselves and after openTSNE (fit on the training images, test images
placed by ``transform``), the score the 2-D map is held to:

- ``H``: the backbone's output, what the map is made from;
- ``H, mean of V views``: H averaged over V augmented views of every image
  (the model's preset; crops of the given scale ranges), test-time
  augmentation;
- ``stage S pooled``: the average-pooled output of the backbone's stage S
  (1-based; the last stage's is H);
- ``last stage pooled 2x2``: the last stage's map pooled to 2 × 2 cells,
  which keeps where on the image a feature is;
- ``standardised stage 3 + H``: the two, each feature scaled to unit
  variance over the training images, side by side.

    python benchmarks/quality.py --budget-minutes 15 --batch-size 64 --seed 1 \\
        --save-model q15.pt --name quality_cpu_15min_seed1
    python benchmarks/feature_variants.py --model q15.pt --name feature_variants_15min_seed1
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from _common import write_json
from napari_tsimcne.augmentation import make_augmentation
from napari_tsimcne.data import as_image_stack, to_uint8_tensor
from napari_tsimcne.metrics import knn_accuracy, pixel_tsne_baseline
from napari_tsimcne.model import TSimCNEModel
from quality import add_split_arguments, load_split


def backbone_outputs(model: TSimCNEModel, images: np.ndarray, augment=None, views: int = 1,
                     batch_size: int = 256) -> dict[str, np.ndarray]:
    """The features ``"H"`` and the pooled output of every stage of the backbone, float32.

    ``"stage S"`` is stage S's output average-pooled, ``(N, channels)``, read
    by hooks from the network's own forward pass; ``"last 2x2"`` is the last
    stage pooled to 2 × 2 cells, ``(N, 4 * channels)``.  With ``augment``,
    every output is the mean over ``views`` augmented views.
    """
    network = model.network.eval()
    stages = network.backbone.stages
    height, width, _ = model.image_shape
    stack = as_image_stack(images, axes=model.axes)
    uint8 = to_uint8_tensor(stack, model.intensity_range, (height, width))
    per_view: dict[str, list] = {}

    def keep(name, output):
        per_view.setdefault(name, []).append(output)

    hooks = [stage.register_forward_hook(
        lambda _, __, y, name=f"stage {index}": keep(name, y.mean((2, 3))))
        for index, stage in enumerate(stages, start=1)]
    hooks.append(stages[-1].register_forward_hook(
        lambda _, __, y: keep("last 2x2", F.adaptive_avg_pool2d(y, 2).flatten(1))))
    outputs: dict[str, list] = {}
    try:
        with torch.no_grad():
            for batch in uint8.split(batch_size):
                x = batch.float().div(255)
                per_view.clear()
                for _ in range(views):
                    keep("H", network.features(augment(x) if augment else x))
                for name, tensors in per_view.items():
                    outputs.setdefault(name, []).append(torch.stack(tensors).mean(0))
    finally:
        for hook in hooks:
            hook.remove()
    return {name: torch.cat(parts).float().numpy() for name, parts in outputs.items()}


def standardised(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both scaled by the training features' mean and standard deviation."""
    mean, std = train.mean(0), train.std(0) + 1e-6
    return (train - mean) / std, (test - mean) / std


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="file written by quality.py --save-model")
    add_split_arguments(parser)
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--view-crops", type=float, nargs="+", default=[0.4, 0.7],
                        help="lower ends of the crop scale ranges of the averaged views")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="feature_variants")
    args = parser.parse_args()

    x_train, y_train, x_test, y_test = load_split(args.dataset, args.n_train, args.n_test)
    model = TSimCNEModel.load(args.model, device="cpu")
    torch.manual_seed(args.seed)
    train, test = backbone_outputs(model, x_train), backbone_outputs(model, x_test)
    last = f"stage {len(model.network.backbone.stages)}"
    candidates = {"H": (train["H"], test["H"])}
    candidates.update({f"{name} pooled": (train[name], test[name])
                       for name in train if name.startswith("stage") and name != last})
    candidates["last stage pooled 2x2"] = (train["last 2x2"], test["last 2x2"])
    scaled = [standardised(train[name], test[name]) for name in ("stage 3", "H")]
    candidates["standardised stage 3 + H"] = tuple(
        np.concatenate(parts, axis=1) for parts in zip(*scaled))
    height, width, channels = model.image_shape
    for low in args.view_crops:
        augment = make_augmentation(model.augmentation, channels, (height, width), (low, 1.0))
        views = [backbone_outputs(model, x, augment, args.views)["H"] for x in (x_train, x_test)]
        candidates[f"H, mean of {args.views} views, crops ({low}, 1)"] = tuple(views)

    rows = {}
    for name, (train_features, test_features) in candidates.items():
        tsne_train, tsne_test = pixel_tsne_baseline(train_features, test_features,
                                                    random_state=args.seed)
        rows[name] = {"dim": train_features.shape[1],
                      "knn": knn_accuracy(train_features, y_train, test_features, y_test),
                      "openTSNE": knn_accuracy(tsne_train, y_train, tsne_test, y_test)}
        print(f"{name} ({rows[name]['dim']}-D): kNN {rows[name]['knn']:.3f}, "
              f"openTSNE {rows[name]['openTSNE']:.3f}", flush=True)
    write_json(args.name, {"args": vars(args), "rows": rows})


if __name__ == "__main__":
    main()
