"""``python -m heatlit.train [overrides]``: fit, test the best checkpoint with every decoder, report.

Examples:
    python -m heatlit.train                                  # the embedded default (CPU, minutes)
    python -m heatlit.train model=hrnet encoding=unquant
    python -m heatlit.train -m +sweep=table2_cpu             # a grid (see sweeps/ and the README)
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

from heatlit.training.job import hydra_record_subdir
from heatlit.training.run import main_guard, train

# conf/train.yaml's hydra.output_subdir; registered at import so Hydra's launcher workers have it too
OmegaConf.register_new_resolver("heatlit_record", hydra_record_subdir, replace=True)


@hydra.main(config_path="../conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    results = main_guard(train, cfg)
    # Returned for Hydra sweepers that optimise a metric.
    values = results.get("test", {}).get(cfg.monitor.decoder, {})
    return values.get(cfg.monitor.metric) if cfg.monitor.metric else values.get("pckh@0.1", values.get("ap"))


if __name__ == "__main__":
    main()
