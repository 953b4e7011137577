"""Tests for liftpose.metrics: functional metrics and the DDP-exact torchmetrics classes."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from liftpose.metrics import functional as F
from liftpose.metrics import pose as pose_mod
from liftpose.metrics.pose import AUC, MPJPE, MPJVE, NMPJPE, PCK, PMPJPE, PoseMetric, pose_metrics

PROPS = settings(max_examples=40, deadline=None)

seeds = st.integers(0, 2**32 - 1)
n_samples = st.integers(1, 6)
n_joints = st.integers(3, 20)


def _poses(seed: int, n: int, j: int, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Random target ``(n, j, 3)`` and a noisy prediction of it."""
    rng = np.random.default_rng(seed)
    target = rng.normal(size=(n, j, 3))
    pred = target + 0.3 * rng.normal(size=(n, j, 3))
    return torch.tensor(pred, dtype=dtype), torch.tensor(target, dtype=dtype)


def _rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniformly random proper rotation (det +1) from the QR of a Gaussian matrix."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _rmse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Root-mean-square joint error per sample, ``(N,)``."""
    return ((pred - target) ** 2).sum(-1).mean(-1).sqrt()


def _sse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((pred - target) ** 2).sum(dim=(1, 2))


# ============================================================== NumPy references (per sample loop)
def ref_mpjpe(pred: np.ndarray, target: np.ndarray) -> float:
    return float(np.linalg.norm(pred - target, axis=-1).mean())


def ref_p_mpjpe(pred: np.ndarray, target: np.ndarray) -> float:
    """VideoPose3D-style protocol #2: H = X0^T Y0 = U S V^T, R = V U^T, reflection fix."""
    errors = []
    for y, x in zip(pred, target):
        mu_x, mu_y = x.mean(axis=0), y.mean(axis=0)
        x0, y0 = x - mu_x, y - mu_y
        norm_x, norm_y = np.linalg.norm(x0), np.linalg.norm(y0)
        x0, y0 = x0 / norm_x, y0 / norm_y
        u, s, vt = np.linalg.svd(x0.T @ y0)
        v = vt.T
        r = v @ u.T
        if np.linalg.det(r) < 0:
            v[:, -1] = -v[:, -1]
            s[-1] = -s[-1]
            r = v @ u.T
        a = s.sum() * norm_x / norm_y
        t = mu_x - a * mu_y @ r
        errors.append(np.linalg.norm(a * y @ r + t - x, axis=-1).mean())
    return float(np.mean(errors))


def ref_n_mpjpe(pred: np.ndarray, target: np.ndarray) -> float:
    s = (pred * target).sum(axis=(1, 2), keepdims=True) / (pred**2).sum(axis=(1, 2), keepdims=True)
    return ref_mpjpe(s * pred, target)


def ref_mpjve(pred: np.ndarray, target: np.ndarray) -> float:
    return ref_mpjpe(np.diff(pred, axis=0), np.diff(target, axis=0))


def ref_pck(pred: np.ndarray, target: np.ndarray, threshold: float) -> float:
    return float((np.linalg.norm(pred - target, axis=-1) < threshold).mean() * 100.0)


# ============================================================== functional: properties
@PROPS
@given(seed=seeds, n=st.integers(2, 6), j=n_joints)
def test_every_metric_is_perfect_on_equal_poses(seed: int, n: int, j: int) -> None:
    _, target = _poses(seed, n, j, torch.float32)
    pred = target.clone()
    for fn in (F.mpjpe, F.p_mpjpe, F.n_mpjpe, F.mpjve):
        assert fn(pred, target).item() == pytest.approx(0.0, abs=1e-5), fn.__name__
    # strictly below the threshold: no error is below 0, so a perfect prediction fails 0 mm
    assert F.pck(pred, target, threshold=0.0).item() == 0.0
    assert F.pck(pred, target, threshold=1e-3).item() == 100.0
    assert F.auc(pred, target).item() == pytest.approx(100 * 30 / 31)


@PROPS
@given(seed=seeds, n=n_samples, j=n_joints, dtype=st.sampled_from([torch.float32, torch.float64]))
def test_p_mpjpe_invariant_to_similarity_transform_of_pred(seed, n, j, dtype) -> None:
    pred, target = _poses(seed, n, j, torch.float64)
    rng = np.random.default_rng(seed + 1)
    rot = torch.tensor(np.stack([_rotation(rng) for _ in range(n)]))  # (n, 3, 3)
    scale = torch.tensor(rng.uniform(0.5, 2.0, size=(n, 1, 1)))
    shift = torch.tensor(rng.normal(scale=3.0, size=(n, 1, 3)))
    moved = scale * pred @ rot + shift
    base = F.p_mpjpe_per_sample(pred.to(dtype), target.to(dtype))
    after = F.p_mpjpe_per_sample(moved.to(dtype), target.to(dtype))
    torch.testing.assert_close(after, base, rtol=1e-4, atol=1e-4 * base.abs().max().item())


@PROPS
@given(seed=seeds, n=n_samples, j=n_joints)
def test_procrustes_recovers_an_exact_similarity(seed: int, n: int, j: int) -> None:
    _, target = _poses(seed, n, j)
    rng = np.random.default_rng(seed)
    rot = torch.tensor(np.stack([_rotation(rng) for _ in range(n)]))
    scale = torch.tensor(rng.uniform(0.5, 2.0, size=(n, 1, 1)))
    pred = scale * target @ rot + torch.tensor(rng.normal(size=(n, 1, 3)))
    torch.testing.assert_close(F.procrustes_align(pred, target), target, rtol=0, atol=1e-9)
    assert F.p_mpjpe(pred, target).item() == pytest.approx(0.0, abs=1e-9)


@PROPS
@given(seed=seeds, n=n_samples, j=n_joints)
def test_alignment_least_squares_ordering(seed: int, n: int, j: int) -> None:
    """True properties: the alignments minimise the squared error over nested sets
    (identity within scale-only within similarity), and mean distance <= RMS distance."""
    pred, target = _poses(seed, n, j)
    sse_id = _sse(pred, target)
    sse_n = _sse(F.scale_align(pred, target), target)
    sse_p = _sse(F.procrustes_align(pred, target), target)
    assert bool((sse_p <= sse_n * (1 + 1e-9) + 1e-12).all())
    assert bool((sse_n <= sse_id * (1 + 1e-9) + 1e-12).all())
    rmse = _rmse(pred, target)
    assert bool((F.p_mpjpe_per_sample(pred, target) <= rmse * (1 + 1e-9)).all())
    assert bool((F.n_mpjpe_per_sample(pred, target) <= rmse * (1 + 1e-9)).all())
    assert bool((F.mpjpe_per_sample(pred, target) <= rmse * (1 + 1e-9)).all())


def test_p_mpjpe_and_n_mpjpe_can_exceed_mpjpe() -> None:
    """'P-MPJPE <= MPJPE' is NOT a theorem: the alignment minimises squared error, so one
    outlier joint gets spread over the others and the mean distance can grow."""
    target = torch.tensor(
        [[[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [-1, 0, 0], [0, -1, 0], [0, 0, -1]]],
        dtype=torch.float64,
    )
    pred = target.clone()
    pred[0, 0, 0] += 3.0  # one joint off by 3 along its own direction
    assert F.mpjpe(pred, target).item() == pytest.approx(0.5)
    assert F.p_mpjpe(pred, target).item() > F.mpjpe(pred, target).item()
    assert F.n_mpjpe(pred, target).item() > F.mpjpe(pred, target).item()


def test_p_mpjpe_uses_proper_rotations_only() -> None:
    rng = np.random.default_rng(0)
    target = torch.tensor(rng.normal(size=(4, 12, 3)))
    mirrored = target * torch.tensor([-1.0, 1.0, 1.0])  # improper: det = -1
    # A reflection would align it perfectly; a proper rotation cannot (non-planar poses).
    value = F.p_mpjpe(mirrored, target).item()
    assert value > 0.1
    assert value == pytest.approx(ref_p_mpjpe(mirrored.numpy(), target.numpy()), rel=1e-9)


@PROPS
@given(
    seed=seeds,
    n=n_samples,
    j=n_joints,
    thresholds=st.lists(st.floats(0.0, 3.0), min_size=1, max_size=8),
)
def test_pck_in_range_and_monotone_auc_is_mean_pck(seed, n, j, thresholds) -> None:
    pred, target = _poses(seed, n, j, torch.float32)
    thresholds = sorted(thresholds)
    values = [F.pck(pred, target, threshold=t).item() for t in thresholds]
    assert all(0.0 <= v <= 100.0 for v in values)
    assert all(a <= b for a, b in zip(values, values[1:]))
    expected_auc = float(np.mean(values))
    assert F.auc(pred, target, thresholds).item() == pytest.approx(expected_auc, abs=1e-4)
    # per-sample AUC matches the O(N J K) definition as well
    per = torch.stack([F.pck_per_sample(pred, target, t) for t in thresholds]).mean(0)
    torch.testing.assert_close(F.auc_per_sample(pred, target, thresholds), per)


# ============================================================== functional: parity with NumPy
@settings(max_examples=25, deadline=None)
@given(seed=seeds, n=n_samples, j=n_joints, dtype=st.sampled_from([torch.float32, torch.float64]))
def test_parity_with_numpy_reference(seed: int, n: int, j: int, dtype: torch.dtype) -> None:
    pred, target = _poses(seed, n + 1, j, dtype)
    p, t = pred.double().numpy(), target.double().numpy()
    tol = {"rel": 1e-5, "abs": 1e-6}
    assert F.mpjpe(pred, target).item() == pytest.approx(ref_mpjpe(p, t), **tol)
    assert F.p_mpjpe(pred, target).item() == pytest.approx(ref_p_mpjpe(p, t), **tol)
    assert F.n_mpjpe(pred, target).item() == pytest.approx(ref_n_mpjpe(p, t), **tol)
    assert F.mpjve(pred, target).item() == pytest.approx(ref_mpjve(p, t), **tol)
    assert F.pck(pred, target, 0.5).item() == pytest.approx(ref_pck(p, t, 0.5), abs=1e-4)
    for name in ("mpjpe", "p_mpjpe", "n_mpjpe", "mpjve"):
        out = getattr(F, name)(pred, target)
        assert out.ndim == 0 and out.dtype == dtype


def test_per_sample_shapes_and_means() -> None:
    pred, target = _poses(3, 5, 17, torch.float32)
    for name in ("mpjpe", "p_mpjpe", "n_mpjpe", "pck", "auc"):
        per = getattr(F, f"{name}_per_sample")(pred, target)
        assert per.shape == (5,)
        torch.testing.assert_close(getattr(F, name)(pred, target), per.mean())
    assert F.mpjve_per_sample(pred, target).shape == (4,)
    assert F.joint_errors(pred, target).shape == (5, 17)


def test_degenerate_prediction_is_finite() -> None:
    target = torch.tensor(np.random.default_rng(1).normal(size=(2, 5, 3)))
    pred = torch.zeros_like(target)
    # all joints at one point: the best similarity / scale maps it to the centroid / origin
    expected_p = (target - target.mean(1, keepdim=True)).norm(dim=-1).mean()
    assert F.p_mpjpe(pred, target).item() == pytest.approx(expected_p.item())
    assert F.n_mpjpe(pred, target).item() == pytest.approx(target.norm(dim=-1).mean().item())


def test_mpjpe_and_n_mpjpe_are_differentiable() -> None:
    pred, target = _poses(0, 3, 17)
    pred.requires_grad_(True)
    (F.mpjpe(pred, target) + F.n_mpjpe(pred, target) + F.p_mpjpe(pred, target)).backward()
    assert pred.grad is not None and bool(pred.grad.isfinite().all())


# ============================================================== functional: hand-computed PCK/AUC
def _three_joint_errors() -> tuple[torch.Tensor, torch.Tensor]:
    """Errors of exactly 0, 100 and 200 (mm) on three joints."""
    target = torch.tensor([[[0.0, 0.0, 0.0], [10.0, 20.0, 30.0], [-5.0, 0.0, 7.0]]])
    pred = target + torch.tensor([[[0.0, 0.0, 0.0], [100.0, 0.0, 0.0], [0.0, 0.0, -200.0]]])
    return pred, target


def test_pck_auc_hand_computed() -> None:
    pred, target = _three_joint_errors()
    assert F.pck(pred, target).item() == pytest.approx(200 / 3)  # 0, 100 < 150
    assert F.pck(pred, target, threshold=100.0).item() == pytest.approx(100 / 3)  # strict
    assert F.pck(pred, target, threshold=100.1).item() == pytest.approx(200 / 3)
    assert F.pck(pred, target, threshold=200.0).item() == pytest.approx(200 / 3)  # 200 fails
    assert F.pck(pred, target, threshold=200.1).item() == pytest.approx(100.0)
    # 31 thresholds 0..150, a joint passes those strictly above its error: joint 0 (error 0)
    # passes 5..150 (30), joint 1 (100) passes 105..150 (10), joint 2 (200) none.
    assert F.auc(pred, target).item() == pytest.approx(100 * (30 + 10 + 0) / 93)
    assert F.auc(pred, target, thresholds=[150.0, 0.0, 100.0]).item() == pytest.approx(
        100 * (2 + 1 + 0) / 9
    )
    # joint subset (as for MPI-INF-3DHP's 14 of 17 joints)
    assert F.pck(pred, target, joints=[1, 2]).item() == pytest.approx(50.0)
    assert F.auc(pred, target, joints=[1, 2]).item() == pytest.approx(100 * 10 / 62)
    assert F.auc(pred, target, joints=[0]).item() == pytest.approx(100 * 30 / 31)
    assert len(F.DEFAULT_AUC_THRESHOLDS) == 31 and F.DEFAULT_AUC_THRESHOLDS[-1] == 150.0


def test_pck_auc_tie_rule_of_mpi_inf_3dhp() -> None:
    """The official 3DHP code counts a joint as correct when ``error < t``: errors of exactly
    0 mm and 150 mm sit on the grid 0:5:150 and are wrong at their own threshold."""
    target = torch.zeros(1, 2, 3)
    at_150 = target + torch.tensor([[[0.0, 0.0, 0.0], [0.0, 150.0, 0.0]]])
    assert F.pck(at_150, target, joints=[1]).item() == 0.0  # PCK of a 150 mm error is 0
    assert F.pck(at_150, target, joints=[0]).item() == 100.0  # 0 < 150
    assert F.auc(at_150, target, joints=[1]).item() == 0.0  # below no threshold of 0..150
    assert F.auc(at_150, target, joints=[0]).item() == pytest.approx(100 * 30 / 31)
    assert F.auc(target.clone(), target).item() == pytest.approx(100 * 30 / 31)
    # the metric classes apply the same rule
    metric = PCK(ACTIONS, scale=1.0)
    n = 2
    metric.update(
        at_150.repeat(n, 1, 1),
        target.repeat(n, 1, 1),
        torch.zeros(n, dtype=torch.long),
        torch.zeros(n, dtype=torch.long),
        torch.arange(n),
        torch.zeros(n, dtype=torch.long),
    )
    assert metric.compute()["pck/frames"].item() == pytest.approx(50.0)


# ============================================================== functional: validation
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: F.mpjpe(torch.zeros(4, 17), torch.zeros(4, 17)),
            r"`pred` must have shape.*\(4, 17\)",
        ),
        (lambda: F.mpjpe(torch.zeros(4, 17, 2), torch.zeros(4, 17, 2)), r"\(4, 17, 2\)"),
        (
            lambda: F.p_mpjpe(torch.zeros(4, 17, 3), torch.zeros(4, 16, 3)),
            r"same shape.*\(4, 16, 3\)",
        ),
        (lambda: F.n_mpjpe(torch.zeros(4, 17, 3), torch.zeros(4, 17)), r"`target` must have shape"),
        (lambda: F.mpjve(torch.zeros(1, 17, 3), torch.zeros(1, 17, 3)), r"T >= 2"),
        (lambda: F.pck(torch.zeros(2, 3, 3), torch.zeros(2, 3, 3), joints=[3]), r"`joints`"),
        (lambda: F.auc(torch.zeros(2, 3, 3), torch.zeros(2, 3, 3), thresholds=[]), r"thresholds"),
    ],
)
def test_functional_shape_errors(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_functional_rejects_integer_poses() -> None:
    with pytest.raises(TypeError, match="floating"):
        F.mpjpe(torch.zeros(2, 3, 3, dtype=torch.long), torch.zeros(2, 3, 3))


# ============================================================== torchmetrics classes
ACTIONS = ("Directions", "Walking", "Sitting")


def _batch(offsets_mm, action, seq, frame, joints: int = 4):
    """Poses in metres; joint errors equal ``offsets_mm`` (per sample) exactly along x."""
    n = len(offsets_mm)
    target = torch.tensor(np.random.default_rng(7).normal(size=(n, joints, 3)), dtype=torch.float64)
    pred = target.clone()
    pred[..., 0] += torch.tensor(offsets_mm, dtype=torch.float64)[:, None] / 1000.0
    as_long = lambda v: torch.tensor(v, dtype=torch.long)
    return pred, target, as_long(action), as_long(seq), as_long(frame)


def _random_set(n: int = 24, joints: int = 17, seed: int = 0):
    """A shuffled evaluation set: 3 sequences of consecutive frames, metres, float32."""
    rng = np.random.default_rng(seed)
    seq = np.repeat(np.arange(3), n // 3)
    frame = np.concatenate([np.arange(n // 3) + 5 * s for s in range(3)])
    action = np.array([0, 1, 1])[seq]
    target = rng.normal(scale=0.3, size=(n, joints, 3))
    pred = target + rng.normal(scale=0.05, size=(n, joints, 3))
    perm = rng.permutation(n)
    t = lambda a, dt: torch.tensor(a[perm], dtype=dt)
    return (
        t(pred, torch.float32),
        t(target, torch.float32),
        t(action, torch.long),
        t(seq, torch.long),
        t(frame, torch.long),
    )


def _take(batch, idx):
    return tuple(x[idx] for x in batch)


def _assert_same(a: dict, b: dict, exact: bool = True) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if exact:
            assert torch.equal(a[k], b[k]) or (a[k].isnan() and b[k].isnan()), k
        else:
            torch.testing.assert_close(a[k], b[k], rtol=1e-6, atol=1e-6, msg=k)


def test_avg_is_mean_over_actions_frames_is_mean_over_frames() -> None:
    # Directions: one frame at 10 mm; Walking: three frames at 20 mm.
    metric = MPJPE(ACTIONS)
    metric.update(*_batch([10, 20, 20, 20], [0, 1, 1, 1], [0, 1, 1, 1], [0, 0, 1, 2]))
    out = metric.compute()
    assert set(out) == {
        "mpjpe/avg",
        "mpjpe/frames",
        "mpjpe/action/Directions",
        "mpjpe/action/Walking",
    }
    assert out["mpjpe/action/Directions"].item() == pytest.approx(10.0, abs=1e-6)
    assert out["mpjpe/action/Walking"].item() == pytest.approx(20.0, abs=1e-6)
    assert out["mpjpe/avg"].item() == pytest.approx(15.0, abs=1e-6)
    assert out["mpjpe/frames"].item() == pytest.approx(17.5, abs=1e-6)
    assert all(v.ndim == 0 and v.dtype == torch.float32 for v in out.values())


def test_class_results_match_functional() -> None:
    batch = _random_set()
    pred, target, action = batch[0] * 1000, batch[1] * 1000, batch[2]
    cases = [
        (MPJPE(ACTIONS), F.mpjpe_per_sample),
        (PMPJPE(ACTIONS), F.p_mpjpe_per_sample),
        (NMPJPE(ACTIONS), F.n_mpjpe_per_sample),
        (PCK(ACTIONS, threshold=60.0), lambda p, t: F.pck_per_sample(p, t, 60.0)),
        (AUC(ACTIONS, joints=range(14)), lambda p, t: F.auc_per_sample(p, t, joints=range(14))),
    ]
    for metric, fn in cases:
        metric.update(*batch)
        out = metric.compute()
        per = fn(pred, target).double()
        means = [per[action == a].mean().item() for a in (0, 1)]
        n = metric.name
        assert out[f"{n}/frames"].item() == pytest.approx(per.mean().item(), rel=1e-5)
        assert out[f"{n}/avg"].item() == pytest.approx(np.mean(means), rel=1e-5)
        assert out[f"{n}/action/Walking"].item() == pytest.approx(means[1], rel=1e-5)
        assert f"{n}/action/Sitting" not in out  # absent action: no key


def test_duplicates_do_not_change_the_result() -> None:
    batch = _random_set()
    once, twice = pose_metrics(ACTIONS), pose_metrics(ACTIONS)
    once.update(*batch)
    twice.update(*batch)
    twice.update(*_take(batch, torch.tensor([3, 0, 0, 7, 23])))
    _assert_same(once.compute(), twice.compute())


def test_split_and_shuffled_updates_equal_one_call() -> None:
    batch = _random_set()
    whole, split = pose_metrics(ACTIONS), pose_metrics(ACTIONS)
    whole.update(*batch)
    perm = torch.randperm(24, generator=torch.Generator().manual_seed(3))
    for idx in perm.split([5, 1, 11, 7]):
        split.update(*_take(batch, idx))
    _assert_same(whole.compute(), split.compute(), exact=False)


def test_mpjve_uses_consecutive_frames_of_one_sequence_only() -> None:
    # target = 0; pred offset along x per frame (mm, scale=1)
    offsets = {(0, 0): 0.0, (0, 1): 1.0, (0, 2): 3.0, (1, 0): 100.0, (1, 1): 100.0}
    offsets |= {(2, 0): 0.0, (2, 2): 50.0}  # gap: frames 0 and 2 are not consecutive
    keys = list(offsets)[::-1]  # any order
    pred = torch.zeros(len(keys), 2, 3)
    pred[:, :, 0] = torch.tensor([offsets[k] for k in keys])[:, None]
    seq = torch.tensor([k[0] for k in keys])
    frame = torch.tensor([k[1] for k in keys])
    action = (seq > 0).long()  # seq 0 -> action 0; seqs 1, 2 -> action 1
    metric = MPJVE(ACTIONS, scale=1.0)
    metric.update(pred, torch.zeros_like(pred), action, seq, frame)
    out = metric.compute()
    # pairs: seq0 (0,1): 1, seq0 (1,2): 2, seq1 (0,1): 0. Not 3 -> 100 across seqs, not seq2.
    assert out["mpjve/frames"].item() == pytest.approx(1.0)
    assert out["mpjve/action/Directions"].item() == pytest.approx(1.5)
    assert out["mpjve/action/Walking"].item() == pytest.approx(0.0)
    assert out["mpjve/avg"].item() == pytest.approx(0.75)
    # agrees with the functional code run per sequence
    seq0 = pred[(seq == 0)][frame[seq == 0].argsort()]
    assert F.mpjve(seq0, torch.zeros_like(seq0)).item() == pytest.approx(1.5)


def test_collection_keys_groups_and_agreement_with_single_metrics() -> None:
    batch = _random_set()
    collection = pose_metrics(ACTIONS, prefix="val/")
    collection.update(*_take(batch, slice(0, 10)))
    collection.update(*_take(batch, slice(10, None)))
    assert len(collection.compute_groups) == 1  # one shared copy of the states
    out = collection.compute()
    names = ("mpjpe", "p_mpjpe", "n_mpjpe", "mpjve", "pck", "auc")
    suffixes = ("avg", "frames", "action/Directions", "action/Walking")
    assert set(out) == {f"val/{n}/{s}" for n in names for s in suffixes}
    for cls in (MPJPE, PMPJPE, NMPJPE, MPJVE, PCK, AUC):
        single = cls(ACTIONS)
        single.update(*batch)
        for key, value in single.compute().items():
            torch.testing.assert_close(out[f"val/{key}"], value, msg=key)
    collection.reset()
    collection.update(*batch)
    assert out.keys() == collection.compute().keys()


@pytest.mark.filterwarnings("ignore:MPJVE.*consecutive")  # a 5-frame shuffled batch may have none
def test_forward_accumulates_like_update() -> None:
    batch = _random_set()
    ref = pose_metrics(ACTIONS)
    ref.update(*batch)
    stepped = pose_metrics(ACTIONS)
    for idx in torch.arange(24).split([5, 7, 12]):
        step = stepped(*_take(batch, idx))  # batch-only values, as in a validation_step
        assert "mpjpe/frames" in step
    _assert_same(stepped.compute(), ref.compute(), exact=False)


def test_chunked_compute_equals_unchunked(monkeypatch: pytest.MonkeyPatch) -> None:
    batch = _random_set()
    ref = pose_metrics(ACTIONS)
    ref.update(*batch)
    expected = ref.compute()
    monkeypatch.setattr(pose_mod, "_CHUNK", 5)
    chunked = pose_metrics(ACTIONS)
    chunked.update(*batch)
    _assert_same(chunked.compute(), expected, exact=False)


def test_empty_state_returns_nan_with_warning() -> None:
    metric = PMPJPE(ACTIONS)
    with pytest.warns(UserWarning):
        out = metric.compute()
    assert set(out) == {"p_mpjpe/avg", "p_mpjpe/frames"}
    assert all(math.isnan(v.item()) for v in out.values())
    # MPJVE with no consecutive frames: NaN as well
    mpjve = MPJVE(ACTIONS)
    mpjve.update(*_batch([1, 2], [0, 0], [0, 0], [0, 2]))
    with pytest.warns(UserWarning, match="consecutive"):
        assert math.isnan(mpjve.compute()["mpjve/avg"].item())


def test_update_validation() -> None:
    metric = MPJPE(ACTIONS)
    pred, target, action, seq, frame = _batch([1, 2], [0, 0], [0, 0], [0, 1])
    with pytest.raises(
        ValueError, match=r"`pred` must have shape \(N, J, 3\) with J >= 1, got \(2, 4\)"
    ):
        metric.update(pred[..., 0], target, action, seq, frame)
    with pytest.raises(ValueError, match="same shape"):
        metric.update(pred, target[:, :3], action, seq, frame)
    with pytest.raises(ValueError, match=r"`seq` must have shape \(N,\)"):
        metric.update(pred, target, action, seq[:1], frame)
    with pytest.raises(TypeError, match="`frame` must be an integer"):
        metric.update(pred, target, action, seq, frame.float())
    metric.update(pred, target, action, seq, frame)
    with pytest.raises(ValueError, match="number of joints"):
        metric.update(pred[:, :3], target[:, :3], action, seq, frame)
    bad = MPJPE(ACTIONS)
    bad.update(pred, target, torch.tensor([0, 3]), seq, frame)
    with pytest.raises(ValueError, match=r"action ids \[3\]"):
        bad.compute()
    with pytest.raises(ValueError, match="unique"):
        MPJPE(["A", "A"])


def test_custom_name_and_subclassing() -> None:
    metric = PCK(ACTIONS, threshold=100.0, name="pck100")
    metric.update(*_batch([50, 150], [0, 0], [0, 0], [0, 1]))
    assert metric.compute()["pck100/frames"].item() == pytest.approx(50.0)
    assert isinstance(metric, PoseMetric) and PCK.name == "pck"


# ============================================================== simulated DDP (no processes)
def _ddp_shards(num_samples: int, world: int) -> list[torch.Tensor]:
    """Indices DistributedSampler(shuffle=False, drop_last=False) gives each rank: the index
    list is padded by repeating its head to a multiple of ``world``, then strided."""
    per_rank = math.ceil(num_samples / world)
    idx = list(range(num_samples))
    idx += idx[: per_rank * world - num_samples]
    return [torch.tensor(idx[r::world]) for r in range(world)]


def _fake_all_gather(other_states: list[torch.Tensor]):
    """A ``dist_sync_fn`` for rank 0 of 2: returns [own state, rank 1's state]. torchmetrics
    gathers the states in ``add_state`` order, once per metric, so cycling matches them up."""
    queue = itertools.cycle(other_states)

    def gather(tensor: torch.Tensor, group=None) -> list[torch.Tensor]:
        other = next(queue)
        assert other.dtype == tensor.dtype and other.shape[1:] == tensor.shape[1:]
        return [tensor, other]

    return gather


def test_ddp_padding_duplicates_are_removed_merge_state() -> None:
    batch = _random_set(n=21)  # 21 samples on 2 ranks: rank 1 repeats sample 0
    shards = _ddp_shards(21, 2)
    assert sum(len(s) for s in shards) == 22
    single = pose_metrics(ACTIONS)
    single.update(*batch)
    expected = single.compute()

    for cls in (MPJPE, PMPJPE, NMPJPE, MPJVE, PCK, AUC):
        ranks = [cls(ACTIONS) for _ in shards]
        for metric, shard in zip(ranks, shards):
            for idx in shard.split(4):  # several batches per rank
                metric.update(*_take(batch, idx))
        ranks[0].merge_state(ranks[1])
        got = ranks[0].compute()
        _assert_same(got, {k: expected[k] for k in got}, exact=False)


def test_ddp_padding_duplicates_are_removed_through_sync() -> None:
    """Rank 0's compute() goes through torchmetrics' real sync path (gather + cat)."""
    batch = _random_set(n=21)
    shards = _ddp_shards(21, 2)
    single = pose_metrics(ACTIONS)
    single.update(*batch)
    expected = single.compute()

    rank1 = pose_metrics(ACTIONS)
    for idx in shards[1].split(4):
        rank1.update(*_take(batch, idx))
    leader = rank1[rank1.compute_groups[0][0]]
    other_states = [torch.cat(getattr(leader, s)) for s in leader._reductions]

    rank0 = pose_metrics(
        ACTIONS,
        dist_sync_fn=_fake_all_gather(other_states),
        distributed_available_fn=lambda: True,
    )
    for idx in shards[0].split(4):
        rank0.update(*_take(batch, idx))
    got = rank0.compute()
    _assert_same(got, expected, exact=False)
    # without deduplication the padded sample would count twice
    padded = torch.cat(shards)
    per = F.mpjpe_per_sample(batch[0][padded] * 1000, batch[1][padded] * 1000)
    assert per.mean().item() != pytest.approx(expected["mpjpe/frames"].item(), rel=1e-7)
    # the local (unsynced) state is restored after compute: rank 0 keeps its own samples only
    assert sum(len(p) for p in rank0[rank0.compute_groups[0][0]].pred) == len(shards[0])


def test_priority_keeps_lowest_whatever_the_update_order():
    from liftpose.metrics.pose import MPJPE

    target = torch.zeros(4, 17, 3)
    pred = torch.zeros(4, 17, 3)
    pred[0] += 0.010  # frame 5 seen from window A, 2 positions off its centre
    pred[1] += 0.030  # frame 5 seen from window B, at its centre: must win
    pred[2] += 0.050  # frame 6, window A
    pred[3] += 0.070  # frame 6, window B (farther): must lose
    action = torch.zeros(4, dtype=torch.long)
    seq = torch.zeros(4, dtype=torch.long)
    frame = torch.tensor([5, 5, 6, 6])
    prio = torch.tensor([2, 0, 1, 3])
    results = []
    for order in ([0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2]):
        m = MPJPE(["A"])
        o = torch.tensor(order)
        m.update(pred[o], target[o], action[o], seq[o], frame[o], prio[o])
        results.append(float(m.compute()["mpjpe/frames"]))
    expected = (30.0 + 50.0) / 2 * 3**0.5
    assert results == pytest.approx([expected] * 3, rel=1e-5)


def test_results_table_shows_undefined_metrics_as_a_dash():
    from rich.console import Console

    from liftpose.utils.report import format_results_table

    by_metric = {"mpjpe": {"walk": 50.0, "Avg": 50.0, "Frames": 51.0},
                 "mpjve": {"walk": float("nan"), "Avg": float("nan")}}  # fmt: skip
    con = Console(width=100, record=True)
    con.print(format_results_table(by_metric, ["walk"]))
    text = con.export_text()
    assert "nan" not in text.lower() and "50.0" in text and "51.0" in text
    rows = {line.split("│")[1].strip(): line for line in text.splitlines() if "│" in line}
    assert rows["Avg"].split("│")[3].strip() == "-" and rows["Frames"].split("│")[3].strip() == "-"
