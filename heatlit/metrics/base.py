"""Shared machinery of the keypoint metrics: input checks, exclusion policy, per-joint sum states.

Every metric here keeps only *sums* (counts, summed errors) per joint, so states reduce across
processes with ``dist_reduce_fx="sum"`` and two batches give exactly what one batch of both gives.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric
from torchmetrics.utilities import rank_zero_warn

Tensor = torch.Tensor


def check_coords(pred: Tensor, target: Tensor, visible: Tensor, dim: int, who: str) -> None:
    """Raise ``ValueError`` unless ``pred``/``target`` are ``[B, K, dim]`` and ``visible`` is ``[B, K]``."""
    for name, t in (("pred", pred), ("target", target), ("visible", visible)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{who}: {name} must be a torch.Tensor, got {type(t).__name__}")
    if pred.ndim != 3 or pred.shape[-1] != dim:
        raise ValueError(f"{who}: expected pred of shape [B, K, {dim}], got {tuple(pred.shape)}")
    if target.shape != pred.shape:
        raise ValueError(
            f"{who}: expected target of shape [B, K, {dim}] = {tuple(pred.shape)} like pred, "
            f"got {tuple(target.shape)}"
        )
    if visible.shape != pred.shape[:2]:
        raise ValueError(
            f"{who}: expected visible of shape [B, K] = {tuple(pred.shape[:2])}, got {tuple(visible.shape)}"
        )


def check_per_sample(x: Tensor, batch: int, name: str, who: str) -> Tensor:
    """Return ``x`` as a ``[B]`` tensor or raise ``ValueError`` naming the expected shape."""
    if not isinstance(x, Tensor):
        x = torch.as_tensor(x)
    if x.shape != (batch,):
        raise ValueError(f"{who}: expected {name} of shape [B] = ({batch},), got {tuple(x.shape)}")
    return x


def as_mask(x: Tensor, name: str, who: str) -> Tensor:
    """Bool view of a mask given as bool or 0/1 numbers.

    Any other value (e.g. a soft ``target_weight`` of 0.5) is rejected rather than guessed at.
    """
    if x.dtype == torch.bool:
        return x
    if not bool(((x == 0) | (x == 1)).all()):
        raise ValueError(f"{who}: {name} must be bool or 0/1, got values outside {{0, 1}}")
    return x != 0


def usable_norm(norm: Tensor) -> Tensor:
    """``[B]`` bool: the samples whose normaliser ``norm [B]`` a normalised metric can divide by (finite, > 0)."""
    return torch.isfinite(norm) & (norm > 0)


def counted_joints(target: Tensor, visible: Tensor, usable: Tensor) -> Tensor:
    """``[B, K]`` bool: the joints a metric scores: ``visible``, ``usable`` (both ``[B, K]`` bool) and with a
    finite ground truth ``target [B, K, D]``."""
    return visible & usable & torch.isfinite(target).all(-1)


class KeypointMetric(Metric):
    """Base of the per-joint sum metrics (not used directly).

    Policies shared by every subclass (documented once here):

    * a joint with ``visible`` false never counts, neither as correct nor as wrong;
    * a *visible* joint that cannot be scored because its ground truth is non-finite or its sample's
      normaliser is ``<= 0`` / non-finite (or, for root-aligned MPJPE, the root is unusable) is
      excluded and counted in the ``num_skipped`` state (joints, not samples); ``compute()`` warns;
    * a counted joint whose *prediction* is non-finite is counted in ``num_invalid``; thresholded
      metrics score it as wrong, error metrics leave it out of the mean and ``compute()`` warns;
    * ``compute()`` with nothing counted returns ``0.0`` and warns (never a silent NaN).

    Args:
        num_joints: K. When ``None`` the per-joint states get their size at the first ``update`` (and
            again after ``reset``). In distributed runs either pass it or make sure every process sees at
            least one batch, because sum reduction stacks the per-process states.
        kwargs: forwarded to :class:`torchmetrics.Metric`.
    """

    full_state_update = False
    is_differentiable = False
    coord_dim = 2
    # Names of the per-joint numerator ([..., K]) and denominator ([K]) states.
    _num_state: str
    _den_state: str
    # How a non-finite prediction is treated, for the warning.
    _invalid_policy = "excluded"

    def __init__(self, num_joints: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if num_joints is not None and int(num_joints) < 1:
            raise ValueError(f"{type(self).__name__}: num_joints must be >= 1 or None, got {num_joints}")
        self.num_joints = None if num_joints is None else int(num_joints)
        self._joint_states: list[str] = []
        self.add_state("num_skipped", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("num_invalid", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def _add_joint_state(self, name: str, lead: tuple[int, ...] = (), dtype=torch.long) -> None:
        self._joint_states.append(name)
        default = torch.zeros(*lead, self.num_joints or 0, dtype=dtype)
        self.add_state(name, default, dist_reduce_fx="sum")

    def _ensure_joints(self, k: int) -> None:
        for name in self._joint_states:
            state = getattr(self, name)
            if state.shape[-1] == 0 and self.num_joints is None:
                setattr(self, name, state.new_zeros(*state.shape[:-1], k))
            elif state.shape[-1] != k:
                raise ValueError(
                    f"{type(self).__name__}: got K={k} joints, but this metric counts {state.shape[-1]} "
                    "(fixed by num_joints or by the first update; reset() to change)"
                )

    def _reduce_states(self, incoming_state: dict) -> None:
        # forward() and merge_state() add states; a still-unsized (lazy, K = 0) side means "no joints
        # seen yet", i.e. zeros of the other side's shape.
        incoming_state = dict(incoming_state)
        for name in self._joint_states:
            mine, theirs = getattr(self, name), incoming_state[name]
            if theirs.shape[-1] == 0 and mine.shape[-1] != 0:
                incoming_state[name] = torch.zeros_like(mine)
            elif mine.shape[-1] == 0 and theirs.shape[-1] != 0:
                setattr(self, name, torch.zeros_like(theirs))
        super()._reduce_states(incoming_state)

    def _prepare(self, pred: Tensor, target: Tensor, visible: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Check shapes, size the states, return ``(pred, target)`` in float64 and ``visible`` as bool."""
        who = type(self).__name__
        check_coords(pred, target, visible, self.coord_dim, who)
        self._ensure_joints(pred.shape[1])
        # float64: threshold ties (error == alpha * norm, inclusive) are decided at double precision,
        # not flipped by float32 rounding of the inputs' difference.
        return pred.double(), target.double(), as_mask(visible, "visible", who)

    def _score(
        self, pred: Tensor, target: Tensor, visible: Tensor, usable: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Apply the exclusion policy and return the Euclidean errors.

        Args:
            pred, target: ``[B, K, D]`` float64.
            visible: ``[B, K]`` bool; joints outside it are ignored silently.
            usable: ``[B, K]`` bool; visible joints outside it are excluded *and* counted as skipped.

        Returns:
            ``counted[B, K]`` (scored joints), ``valid[B, K]`` (counted with a finite prediction) and
            ``err[B, K]`` float64 (zero where not valid).
        """
        counted = counted_joints(target, visible, usable)
        valid = counted & torch.isfinite(pred).all(-1)
        self.num_skipped += (visible & ~counted).sum()
        self.num_invalid += (counted & ~valid).sum()
        diff = torch.where(valid[..., None], pred - target, torch.zeros_like(pred))
        return counted, valid, torch.linalg.vector_norm(diff, dim=-1)

    def _finish(self, ratio: Tensor) -> Tensor:
        """Map ``numerator / denominator`` (``[..., X]``) to the reported value (``[X]``)."""
        raise NotImplementedError

    def _warn(self, message: str) -> None:
        rank_zero_warn(f"{type(self).__name__}: {message}", category=UserWarning)

    def compute(self) -> Tensor:
        """Scalar float32 over all scored joints; 0.0 with a warning when nothing was scored."""
        num, den = getattr(self, self._num_state), getattr(self, self._den_state)
        if int(self.num_skipped):
            self._warn(
                f"{int(self.num_skipped)} visible joints were skipped (invalid normaliser or ground truth)"
            )
        if int(self.num_invalid):
            self._warn(f"{int(self.num_invalid)} non-finite predictions were {self._invalid_policy}")
        total = den.sum()
        if int(total) == 0:
            self._warn("no joint could be scored (none visible, or all excluded); returning 0.0")
            return torch.zeros((), dtype=torch.float32, device=den.device)
        return self._finish(num.sum(-1).double() / total).float()

    def compute_per_joint(self) -> Tensor:
        """``[K]`` float32, one value per joint (synchronised across processes like ``compute``).

        A joint that was never counted gets 0.0 and a warning naming it.
        """
        with self.sync_context(
            dist_sync_fn=self.dist_sync_fn, should_sync=self._to_sync, should_unsync=self._should_unsync
        ):
            num, den = getattr(self, self._num_state), getattr(self, self._den_state)
            empty = (den == 0).nonzero().flatten().tolist()
            if empty:
                self._warn(f"joints {empty} were never visible; reporting 0.0 for them")
            value = self._finish(num.double() / den.clamp(min=1))
            return value.masked_fill(den == 0, 0.0).float()


class ErrorSumMetric(KeypointMetric):
    """Base of the mean-error metrics: per-joint ``err_sum[K]`` (sum of ``err ** power``) and ``count[K]``."""

    higher_is_better = False
    _num_state = "err_sum"
    _den_state = "count"
    _invalid_policy = "excluded from the mean"
    power = 1

    def __init__(self, num_joints: int | None = None, **kwargs) -> None:
        super().__init__(num_joints, **kwargs)
        self._add_joint_state("err_sum", dtype=torch.float64)
        self._add_joint_state("count")

    def _accumulate(self, pred: Tensor, target: Tensor, visible: Tensor, usable: Tensor) -> None:
        _, valid, err = self._score(pred, target, visible, usable)
        self.err_sum += (err**self.power).sum(0)
        self.count += valid.sum(0)

    def _finish(self, ratio: Tensor) -> Tensor:
        return ratio.sqrt() if self.power == 2 else ratio
