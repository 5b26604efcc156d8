"""Where the 2-D map loses against openTSNE of its own features H: the loss or the head?

Loads a model written by ``quality.py --save-model``, computes the backbone
features H of the same split, and lays H out in 2-D four ways, each scored by
held-out kNN accuracy (k=15; test images classified among the training
images) and by the training map's own cross-validated kNN accuracy (a 10%
split of the training images classified by the rest, which judges the layout
alone):

- ``t-SimCNE``: the model's map, test images placed by the network;
- ``openTSNE of H``: fit on the training H, test images placed by ``transform``;
- ``free layout``: free 2-D coordinates of the training images trained with
  the package's Cauchy InfoNCE loss on the kNN graph of H (what the readout
  stage optimises, without a network); test images placed at the median of
  their 15 nearest training images in H;
- ``fresh head``: a new projection head (the package's, hidden layer and 2-D
  readout) trained with the same loss and graph on the clean training H;
  test images placed by the head.

If the free layout matches openTSNE, the loss and graph are not what loses;
the gap between the free layout and the head is what the parametric map costs.

    python benchmarks/quality.py --budget-minutes 15 --backbone resnet10-w16 --batch-size 64 \\
        --baselines --seed 1 --save-model q15.pt --name quality_cpu_15min_seed1
    python benchmarks/layout_gap.py --model q15.pt --name layout_gap_15min_seed1
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors

from _common import write_json
from napari_tsimcne.feature_cache import CACHE_BATCH_SIZE
from napari_tsimcne.heads import ProjectionHead
from napari_tsimcne.loss import CauchyInfoNCELoss
from napari_tsimcne.metrics import knn_accuracy, pixel_tsne_baseline
from napari_tsimcne.model import TSimCNEModel
from napari_tsimcne.neighbors import neighbor_graph, partners
from napari_tsimcne.schedule import HEAD_LR, NEIGHBORS
from quality import add_split_arguments, load_split


def train_layout(embed, parameters, graph, steps: int, lr: float, seed: int) -> None:
    """Adam on the Cauchy InfoNCE loss of anchors and one of their graph neighbours.

    ``embed(indices)`` gives the ``(b, 2)`` coordinates of training images;
    ``graph`` is ``(N, k)``; the rate is annealed from ``lr`` to 0 on a cosine,
    as in the readout stage.
    """
    loss_fn = CauchyInfoNCELoss()
    optimizer = torch.optim.Adam(parameters, lr=lr)
    generator = torch.Generator().manual_seed(seed)
    for step in range(steps):
        optimizer.param_groups[0]["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        anchors = torch.randint(len(graph), (CACHE_BATCH_SIZE,), generator=generator)
        loss = loss_fn(embed(anchors), embed(partners(anchors, graph, 1.0, generator)))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def scores(train_map, test_map, y_train, y_test) -> dict:
    return {"held_out": knn_accuracy(train_map, y_train, test_map, y_test),
            "train_cv": knn_accuracy(train_map, y_train)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="file written by quality.py --save-model")
    add_split_arguments(parser)
    parser.add_argument("--free-steps", type=int, default=10000)
    parser.add_argument("--head-steps", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="layout_gap")
    args = parser.parse_args()

    x_train, y_train, x_test, y_test = load_split(args.dataset, args.n_train, args.n_test)
    model = TSimCNEModel.load(args.model, device="cpu")
    # One forward pass per split gives both the map and the features.
    map_train, h_train = model.transform(x_train, return_features=True)
    map_test, h_test = model.transform(x_test, return_features=True)
    rows = {"kNN in H": scores(h_train, h_test, y_train, y_test),
            "t-SimCNE": scores(map_train, map_test, y_train, y_test)}
    rows["openTSNE of H"] = scores(*pixel_tsne_baseline(h_train, h_test, random_state=args.seed),
                                   y_train, y_test)

    graph = neighbor_graph(h_train, NEIGHBORS, random_state=args.seed)
    _, test_neighbors = NearestNeighbors(n_neighbors=NEIGHBORS).fit(h_train).kneighbors(h_test)
    features = torch.from_numpy(h_train).float()
    torch.manual_seed(args.seed)

    start = time.perf_counter()
    # Started from the first two principal components, as openTSNE starts.
    centred = features - features.mean(0)
    components = centred @ torch.pca_lowrank(centred, q=2, center=False)[2]
    coordinates = torch.nn.Parameter(components / components[:, 0].std())
    # Free coordinates take a far larger step than network weights.
    train_layout(lambda i: coordinates[i], [coordinates], graph, args.free_steps, 0.05, args.seed)
    free_map = coordinates.detach().numpy()
    rows["free layout"] = {**scores(free_map, np.median(free_map[test_neighbors], axis=1),
                                    y_train, y_test),
                           "steps": args.free_steps, "seconds": time.perf_counter() - start}

    start = time.perf_counter()
    head = ProjectionHead(features.shape[1], 2, model.params["hidden_dim"])
    head.replace_readout(2)
    train_layout(lambda i: head(features[i]), list(head.parameters()), graph, args.head_steps,
                 HEAD_LR, args.seed)
    with torch.no_grad():
        head_train = head(features).numpy()
        head_test = head(torch.from_numpy(h_test).float()).numpy()
    rows["fresh head"] = {**scores(head_train, head_test, y_train, y_test),
                          "steps": args.head_steps, "seconds": time.perf_counter() - start}

    for name, row in rows.items():
        print(f"{name}: held-out {row['held_out']:.3f}, training map {row['train_cv']:.3f}")
    write_json(args.name, {"args": vars(args), "rows": rows})


if __name__ == "__main__":
    main()
