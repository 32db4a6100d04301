"""``python -m heatlit.eval ckpt_path=<run folder or checkpoint> [data=...]``: test a checkpoint with every decoder."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from heatlit.training.run import evaluate, main_guard


@hydra.main(config_path="../conf", config_name="eval", version_base="1.3")
def main(cfg: DictConfig) -> None:
    main_guard(evaluate, cfg)


if __name__ == "__main__":
    main()
