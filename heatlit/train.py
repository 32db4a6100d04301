"""``python -m heatlit.train [overrides]``: fit, test the best checkpoint with every decoder, report.

Examples:
    python -m heatlit.train                                  # the embedded default (CPU, minutes)
    python -m heatlit.train model=hrnet encoding=unquant
    python -m heatlit.train -m +sweep=table2_cpu             # a grid (see sweeps/ and the README)
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from heatlit.results import FILE_NAME, read_results
from heatlit.training.run import main_guard, train


@hydra.main(config_path="../conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    main_guard(train, cfg)
    # Returned for Hydra sweepers that optimise a metric: the monitored one, on the test split.
    return read_results(Path(cfg.output_dir) / FILE_NAME).monitored("test")


if __name__ == "__main__":
    main()
