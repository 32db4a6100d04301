"""Configuration checks that must fail before any training starts, with messages a user can act on."""

from __future__ import annotations

from collections.abc import Mapping

from omegaconf import DictConfig, OmegaConf


class ConfigError(ValueError):
    """A configuration that cannot work; the message says what to change."""


def _get(cfg: DictConfig, key: str, default=None):
    return OmegaConf.select(cfg, key, default=default)


def check_config(cfg: DictConfig) -> None:
    """Static checks on the composed config (nothing instantiated yet)."""
    for group in ("data", "model", "encoding", "loss"):
        if _get(cfg, group) is None:
            raise ConfigError(f"no '{group}' selected; choose one with {group}=<name> (see conf/{group}/)")
    sigma = _get(cfg, "encoding.sigma")
    sigmas = sigma if OmegaConf.is_list(sigma) else [sigma]
    # a Gaussian encoder needs its sigma; another representation's is optional, checked when given
    needed = str(_get(cfg, "encoding._target_", "")).endswith("GaussianEncoder")
    if (sigma is not None or needed) and any(not isinstance(s, int | float) or s <= 0 for s in sigmas):
        raise ConfigError(f"encoding.sigma must be > 0 (heatmap pixels), got {sigma}")
    data_stride, model_stride = _get(cfg, "data.stride"), _get(cfg, "model.stride")
    if data_stride is not None and model_stride is not None and data_stride != model_stride:
        raise ConfigError(
            f"heatmap size does not match the model: data.stride={data_stride} but model.stride={model_stride}; "
            f"set both (e.g. data.stride={model_stride} model.stride={model_stride})"
        )
    batch = _get(cfg, "data.batch_size")
    if batch is not None and (not isinstance(batch, int) or batch < 1):
        raise ConfigError(f"data.batch_size must be a positive integer, got {batch}")
    head = _get(cfg, "model.head", "2d")
    depth = _get(cfg, "data.heatmap_depth")
    if head == "3d" and depth is None:
        raise ConfigError(
            "model.head=3d needs volumetric targets: set data.heatmap_depth (e.g. 64) to model.depth_bins"
        )
    if head == "3d" and depth != _get(cfg, "model.depth_bins", 64):
        raise ConfigError(
            f"data.heatmap_depth={depth} must equal model.depth_bins={_get(cfg, 'model.depth_bins')}"
        )
    if head == "2d" and depth is not None:
        raise ConfigError(f"data.heatmap_depth={depth} makes 3D targets but model.head=2d; set model.head=3d")
    if not _get(cfg, "decoders"):
        raise ConfigError("no decoders configured for evaluation (conf/train.yaml 'decoders')")
    for name, node in cfg.decoders.items():
        if not OmegaConf.is_dict(node) or "_target_" not in node:
            raise ConfigError(
                f"decoders.{name} is not a decoder config (no _target_): add it with "
                f"+decoder@decoders.{name}=<option> or remove it with ~decoders.{name}"
            )
    monitor = _get(cfg, "monitor.decoder")
    if monitor is not None and monitor not in cfg.decoders:
        raise ConfigError(
            f"monitor.decoder={monitor} is not among the configured decoders {list(cfg.decoders)}"
        )


def check_decoders(decoders: Mapping, head_dim: int) -> None:
    """Every decoder must handle the head's output (``dims``: spatial dimensionalities it decodes)."""
    for name, decoder in decoders.items():
        dims = getattr(decoder, "dims", (2, 3))
        if head_dim not in dims:
            raise ConfigError(
                f"decoder '{name}' ({decoder!r}) decodes {dims}-D maps but the model head outputs {head_dim}-D"
            )


def check_bottom_up_loss(loss, data: str) -> None:
    """Multi-person data has bottom-up targets (every person in one channel): only a heatmap loss learns
    them; a coordinate loss (integral, DSNT, SimCC, offsets) needs one keypoint per channel."""
    from heatlit.training.losses import HeatmapLoss

    if type(loss) is not HeatmapLoss or loss.integral_weight > 0:
        raise ConfigError(
            f"the multi-person {data} data trains bottom-up heatmaps (several people per channel): "
            f"use loss=mse, not {type(loss).__name__}"
            + (" with an integral term" if isinstance(loss, HeatmapLoss) else "")
        )


def check_model_data(model, grid) -> None:
    """The model's output grid must be the data's heatmap grid (a :class:`heatlit.codecs.HeatmapGrid`)."""
    if model.stride != grid.stride:
        raise ConfigError(f"model stride {model.stride} != data stride {grid.stride}")
    if model.head_dim == 3 and grid.depth_bins != model.depth_bins:
        raise ConfigError(
            f"3D head with {model.depth_bins} depth bins needs data.heatmap_depth={model.depth_bins}"
        )
    if model.head_dim == 2 and grid.dims != 2:
        raise ConfigError(f"a 2D head needs 2D heatmaps: data.heatmap_depth=null, not {grid.depth_bins}")


def check_fits(module, path, shapes: Mapping[str, tuple], shape: Mapping | None, datamodule) -> None:
    """The checkpoint at ``path`` (its tensor ``shapes`` and data ``shape`` record) must fit ``module``.

    Says which way it does not: another keypoint count or input channels than the data, or another model.
    """
    desc = datamodule.description
    for key, what, want in (
        ("num_joints", "keypoints", desc.num_keypoints),
        ("in_channels", "input channels", desc.in_channels),
    ):
        have = (shape or {}).get(key)
        if have is not None and have != want:
            raise ConfigError(f"{path}: checkpoint has {have} {what}, data has {want}")
    own = {k: tuple(v.shape) for k, v in module.state_dict().items() if not k.startswith("scorers.")}
    missing = [k for k in own if k not in shapes]
    unexpected = [k for k in shapes if k not in own and not k.startswith("scorers.")]
    wrong = [f"{k} {list(shapes[k])} vs {list(own[k])}" for k in own if k in shapes and shapes[k] != own[k]]
    if missing or unexpected or wrong:
        parts = [
            f"{n} {what}: {', '.join(keys[:3])}"
            for n, what, keys in (
                (len(missing), "missing", missing),
                (len(unexpected), "unexpected", unexpected),
                (len(wrong), "of another shape (checkpoint vs model)", wrong),
            )
            if keys
        ]
        raise ConfigError(
            f"{path} does not fit the model built from its config (another model?): {'; '.join(parts)}"
        )
