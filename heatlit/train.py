"""``python -m heatlit.train [overrides]``: fit, test the best checkpoint with every decoder, report.

Examples:
    python -m heatlit.train                                  # the embedded default (CPU, minutes)
    python -m heatlit.train model=hrnet encoding=unquant
    python -m heatlit.train -m +sweep=table2_cpu             # a grid (see sweeps/ and the README)
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

from heatlit.results import FILE_NAME, read_results
from heatlit.training.job import hydra_record_subdir, is_rank_zero
from heatlit.training.resume import run_folder
from heatlit.training.run import main_guard, train

# conf/train.yaml's hydra.output_subdir; registered at import so Hydra's launcher workers have it too
OmegaConf.register_new_resolver("heatlit_record", hydra_record_subdir, replace=True)


@hydra.main(config_path="../conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    main_guard(train, cfg)
    if not is_rank_zero():  # DDP workers: rank zero writes results.json
        return None
    # Returned for Hydra sweepers that optimise a metric: the monitored one, on the test split.
    return read_results(run_folder(cfg) / FILE_NAME).monitored("test")


if __name__ == "__main__":
    main()
