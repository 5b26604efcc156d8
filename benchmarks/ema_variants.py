"""``quality.py`` with pre-training's weights averaged (an exponential moving average).

Adds ``--ema-decay D``: after every pre-training step the average is moved
towards the network's weights and BatchNorm statistics by ``1 - D``
(``torch.optim.swa_utils``); at the end of pre-training the network takes
the averaged weights, and the 2-D stages start from them.

Usage: ``quality.py``'s arguments::

    python benchmarks/ema_variants.py --ema-decay 0.999 --budget-minutes 15 \\
        --batch-size 64 --baselines --seed 0 --name quality_cpu_15min_ema0999_seed0
"""

from __future__ import annotations

import sys

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

import quality
from napari_tsimcne import Callback, estimator, trainer


def main():
    decay = float(sys.argv[sys.argv.index("--ema-decay") + 1])
    del sys.argv[sys.argv.index("--ema-decay"): sys.argv.index("--ema-decay") + 2]
    averaging = {}

    class AverageAtPretrainingEnd(Callback):
        def on_stage_end(self, stage: int, embedding) -> None:
            if stage == 0 and "average" in averaging:
                network, average = averaging.pop("network"), averaging.pop("average")
                network.load_state_dict(average.module.state_dict())
                print(f"pre-training ended: the network takes the average of "
                      f"{int(average.n_averaged)} steps (decay {decay})", flush=True)

    default_train, default_step = estimator.train, trainer.training_step

    def train(network, images, stages, augment, **kwargs):
        # Only a training that starts with pre-training (not the planner's timing runs).
        if stages[0].out_dim != 2 and len(stages) > 1:
            averaging["network"] = network
            averaging["average"] = AveragedModel(
                network, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
            kwargs["callbacks"] = [*kwargs.get("callbacks", ()), AverageAtPretrainingEnd()]
        return default_train(network, images, stages, augment, **kwargs)

    def training_step(*args, **kwargs):
        loss = default_step(*args, **kwargs)
        if "average" in averaging:
            with torch.no_grad():
                averaging["average"].update_parameters(averaging["network"])
        return loss

    estimator.train, trainer.training_step = train, training_step
    quality.main()


if __name__ == "__main__":
    main()
