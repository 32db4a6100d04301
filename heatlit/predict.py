"""``python -m heatlit.predict ckpt_path=<run folder or checkpoint> [input=<folder or file>] [out=<file.json>]``:
a checkpoint's keypoints on new depth maps or images, or on its data's test split, as COCO keypoint results.

Examples:
    python -m heatlit.predict ckpt_path=outputs/train/<time>                  # its data's test split
    python -m heatlit.predict ckpt_path=<run> input=depth/ out=pred.json overlays=pred/   # a folder of depth maps
    python -m heatlit.predict ckpt_path=<coco run> input=images/ boxes=detections.json decoder=soft_argmax_auto
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from heatlit.inference import predict
from heatlit.training.run import main_guard


def run_dir(out: str | None, default: str) -> str:
    """Hydra's job folder: the folder of ``out`` when given (so nothing is made anywhere else), else ``default``."""
    return str(Path(out).parent) if out else default


def record_dir(out: str | None) -> str | None:
    """Hydra's record (``.hydra/``) only in the default output folder: with ``out=`` nothing but ``out`` is written."""
    return None if out else ".hydra"


# conf/predict.yaml's hydra.run.dir and hydra.output_subdir; registered at import, before Hydra composes
OmegaConf.register_new_resolver("heatlit_predict_dir", run_dir, replace=True)
OmegaConf.register_new_resolver("heatlit_predict_record", record_dir, replace=True)


@hydra.main(config_path="../conf", config_name="predict", version_base="1.3")
def main(cfg: DictConfig) -> None:
    main_guard(predict, cfg)


if __name__ == "__main__":
    main()
