"""AMPose: the skeleton graph, the partitioned graph convolution, the model and its configs."""

from __future__ import annotations

import pytest
import torch
from omegaconf import open_dict

from liftpose.data.skeleton import H36M16, H36M17, get_layout
from liftpose.losses import LOSSES, CompositeLoss
from liftpose.models.ampose import AMPose
from liftpose.models.blocks import (
    GCN_BLOCKS,
    PARTITION_NAMES,
    PartitionedGraphConv,
    build_gcn_block,
    hop_distance,
    normalised_adjacency,
    partition_adjacency,
    skeleton_adjacency,
)

from .test_configs import compose_cfg

LAYOUTS = {"h36m17": H36M17, "h36m16": H36M16}
END_EFFECTORS = ("RFoot", "LFoot", "Head", "LWrist", "RWrist")


def _small(layout: str = "h36m17", **kw) -> AMPose:
    sk = get_layout(layout)
    kw = {"embed_dim": 16, "depth": 2, "num_heads": 2, **kw}
    return AMPose(num_joints=sk.num_joints, layout=layout, **kw)


# --------------------------------------------------------------------------------------------
# Graph
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_partitions_sum_to_normalised_neighbourhood(layout):
    sk = LAYOUTS[layout]
    adj = skeleton_adjacency(sk)
    assert torch.equal(adj, adj.T) and torch.equal(adj.diagonal(), torch.ones(sk.num_joints))
    norm = normalised_adjacency(adj)
    deg = adj.sum(-1)
    torch.testing.assert_close(norm, adj / (deg[:, None] * deg[None, :]).sqrt())
    parts = partition_adjacency(sk)
    assert parts.shape == (3, sk.num_joints, sk.num_joints) and PARTITION_NAMES[0] == "self"
    torch.testing.assert_close(parts.sum(0), norm)
    # the groups are disjoint and split by hop distance from the hip
    assert ((parts > 0).sum(0) <= 1).all()
    hops = hop_distance(sk)
    assert hops[0] == 0 and sk.names[0] == "Hip"
    i, k = parts[1].nonzero().unbind(-1)
    assert (hops[k] < hops[i]).all()
    i, k = parts[2].nonzero().unbind(-1)
    assert (hops[k] > hops[i]).all()
    # tree: every joint but the root has exactly one closer neighbour, its parent
    closer = parts[1] > 0
    assert closer.sum(-1).tolist() == [0] + [1] * (sk.num_joints - 1)
    for j, p in enumerate(sk.parents):
        if p >= 0:
            assert closer[j, p]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_group_normalisation_follows_eq10(layout):
    sk = LAYOUTS[layout]
    parts = partition_adjacency(sk, normalisation="group")
    torch.testing.assert_close(parts[0], torch.eye(sk.num_joints))  # self group: D = I
    assert torch.equal(parts > 0, partition_adjacency(sk) > 0)
    # closer group: parent p of j weighs 1 / sqrt(children of p)
    children = (partition_adjacency(sk)[2] > 0).sum(-1).float()
    for j, p in enumerate(sk.parents):
        if p >= 0:
            torch.testing.assert_close(parts[1, j, p], children[p].rsqrt())
    with pytest.raises(ValueError, match="normalisation"):
        partition_adjacency(sk, normalisation="rows")


def test_16_joint_layout_has_no_neck_edges():
    names17, names16 = list(H36M17.names), list(H36M16.names)
    adj17, adj16 = skeleton_adjacency(H36M17, False), skeleton_adjacency(H36M16, False)
    assert adj17.shape == (17, 17) and adj16.shape == (16, 16)
    assert "Neck/Nose" in names17 and "Neck/Nose" not in names16
    neck = names17.index("Neck/Nose")
    assert adj17[neck, names17.index("Thorax")] == 1 and adj17[neck, names17.index("Head")] == 1
    assert adj17[names17.index("Head"), names17.index("Thorax")] == 0
    assert adj16[names16.index("Head"), names16.index("Thorax")] == 1
    assert adj17.sum() == 2 * 16 and adj16.sum() == 2 * 15  # trees: J - 1 bones


def _reference_gconv(conv: PartitionedGraphConv, x: torch.Tensor) -> torch.Tensor:
    out = sum(conv.adjacency[g] @ x @ conv.weight[g] for g in range(conv.num_groups))
    return out + conv.bias


def test_partitioned_graph_conv_matches_eq10_and_vanilla_gcn():
    torch.manual_seed(0)
    conv = PartitionedGraphConv(5, 7, H36M17)
    x = torch.randn(3, 17, 5)
    torch.testing.assert_close(conv(x), _reference_gconv(conv, x))
    assert conv(x.reshape(1, 3, 17, 5)).shape == (1, 3, 17, 7)  # any leading dims
    # a (J, J) adjacency is one weight-shared group: the vanilla GCN of eq. 9
    a_hat = normalised_adjacency(skeleton_adjacency(H36M16))
    vanilla = PartitionedGraphConv(5, 7, a_hat, bias=False)
    x16 = torch.randn(3, 16, 5)
    torch.testing.assert_close(vanilla(x16), a_hat @ x16 @ vanilla.weight[0])
    # depthwise: one weight per group and channel
    dw = PartitionedGraphConv(5, 5, H36M17, bias=False, depthwise=True)
    ref = sum(dw.adjacency[g] @ x * dw.weight[g] for g in range(3))
    torch.testing.assert_close(dw(x), ref)
    assert "adjacency" not in conv.state_dict()
    with pytest.raises(ValueError, match="expects"):
        conv(torch.randn(3, 16, 5))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_farther_weights_only_reach_joints_with_children(layout):
    sk = LAYOUTS[layout]
    torch.manual_seed(0)
    conv = PartitionedGraphConv(4, 6, sk)
    x = torch.randn(2, sk.num_joints, 4)
    before = conv(x)
    with torch.no_grad():
        conv.weight[PARTITION_NAMES.index("farther")] += 0.5
    changed = (conv(x) - before).abs().amax(dim=(0, 2)) > 1e-6  # (J,)
    ends = [sk.names.index(n) for n in END_EFFECTORS]
    assert not changed[ends].any()
    assert changed.sum() == sk.num_joints - len(ends)
    # the closer group reaches every joint but the root
    with torch.no_grad():
        conv.weight[PARTITION_NAMES.index("closer")] += 0.5
        after_closer = conv(x)
        conv.weight[PARTITION_NAMES.index("closer")] -= 0.5
    changed = (after_closer - conv(x)).abs().amax(dim=(0, 2)) > 1e-6
    assert changed.tolist() == [False] + [True] * (sk.num_joints - 1)


@pytest.mark.parametrize("kind", GCN_BLOCKS)
def test_gcn_blocks_keep_shape(kind):
    block = build_gcn_block(kind, 8, H36M16, layer_scale_init=0.1)
    assert block(torch.randn(3, 16, 8)).shape == (3, 16, 8)
    with pytest.raises(ValueError, match="gcn_block"):
        build_gcn_block("resnet", 8, H36M16)


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("gcn_block", GCN_BLOCKS)
def test_ampose_forward_backward(layout, gcn_block):
    torch.manual_seed(0)
    model = _small(layout, gcn_block=gcn_block, layer_scale_init=0.1).train()
    J = model.num_joints
    x = torch.randn(4, 1, J, 2)
    y = model(x)
    assert y.shape == (4, 1, J, 3) and model.receptive_field == 1
    y.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    for bad in [(4, 2, J, 2), (4, 1, J + 1, 2), (4, 1, J, 3), (4, J, 2)]:
        with pytest.raises(ValueError, match="expects input"):
            model(torch.randn(bad))


@pytest.mark.parametrize(
    "kw",
    [
        {"pos_embed": "every"},
        {"pos_embed": "first"},
        {"head": "flat"},
        {"gcn_norm": "batch", "gcn_act": "relu"},
        {"partition_normalisation": "group", "gcn_norm": "none", "gcn_bias": False},
        {"drop_rate": 0.1, "attn_drop_rate": 0.1, "drop_path_rate": 0.1},
    ],
)
def test_ampose_options(kw):
    model = _small("h36m16", **kw).train()
    assert model(torch.randn(3, 1, 16, 2)).shape == (3, 1, 16, 3)


def test_ampose_is_per_sample_in_eval():
    model = _small().eval()
    x = torch.randn(5, 1, 17, 2)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[2:3], model(x[2:3]), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"num_frames": 3}, "single-frame"),
        ({"num_joints": 16}, "does not match layout"),
        ({"layout": "coco"}, "unknown joint layout"),
        ({"gcn_block": "resnet"}, "gcn_block"),
        ({"pos_embed": "sine"}, "pos_embed"),
        ({"head": "conv"}, "head"),
        ({"gcn_norm": "group"}, "graph norm"),
        ({"gcn_act": "tanh"}, "activation"),
    ],
)
def test_ampose_rejects_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        AMPose(**{"embed_dim": 16, "depth": 1, "num_heads": 2, **kw})


def test_ampose_parameter_count_default_size():
    """The paper reports no parameter count; the default (N=5, c=512, ours) is pinned here."""
    with torch.device("meta"):
        model = AMPose()
    n = sum(p.numel() for p in model.parameters())
    c, J, depth, hidden = 512, 17, 5, 1024
    encoder = 2 * 2 * c + (3 * c * c + 3 * c) + (c * c + c) + (c * hidden + hidden + hidden * c + c)
    gcn = 2 * (3 * c * c + c + 2 * c)  # two units: 3 group weights, bias, LayerNorm
    expected = (2 * c + c) + J * c + depth * (encoder + gcn) + 2 * c + (3 * c + 3)
    print(f"AMPose default parameters: {n:,} ({n / 1e6:.2f} M)")
    assert n == expected == 18_406_403


# --------------------------------------------------------------------------------------------
# Loss and configs
# --------------------------------------------------------------------------------------------


def test_mse_loss_is_eq11():
    pred, target = torch.zeros(2, 1, 4, 3), torch.zeros(2, 1, 4, 3)
    target[0, 0, 1] = torch.tensor([1.0, 2.0, 2.0])  # squared distance 9 for one of 8 joints
    assert LOSSES["mse"](pred, target).item() == pytest.approx(9 / 8)
    total, parts = CompositeLoss({"mse": {"weight": 2.0}, "mpjpe": {"weight": 0.0}})(pred, target)
    assert set(parts) == {"mse"} and total.item() == pytest.approx(9 / 4)


def test_ampose_configs():
    cfg = compose_cfg("train", ["model=ampose", "~experiment"])
    assert cfg.frames == 1 and cfg.model.num_frames == 1 and cfg.data.receptive_field == 1
    assert cfg.model.gcn_block == "ours" and cfg.model.embed_dim == 512 and cfg.model.depth == 5
    cfg = compose_cfg("train", ["experiment=ampose_h36m", "data.layout=h36m16"])
    assert cfg.data.name == "h36m" and cfg.frames == 1 and cfg.data.batch_size == 128
    assert cfg.model.num_joints == 16 and cfg.model.layout == "h36m16"
    opt, sched = cfg.module.optimizer, cfg.module.scheduler
    assert opt._target_ == "torch.optim.Adam" and opt.lr == 2.5e-5 and opt.weight_decay == 0
    assert sched.gamma == 0.98 and cfg.module.scheduler_interval == "epoch"
    assert cfg.module.loss.terms.mse.weight == 1.0 and cfg.module.loss.terms.mpjpe.weight == 0
    assert cfg.trainer.max_epochs == 50
    cfg = compose_cfg("train", ["experiment=ampose_cpu", "model.gcn_block=convnext"])
    assert cfg.data.name != "h36m" and cfg.trainer.accelerator == "cpu" and cfg.frames == 1
    assert cfg.module.loss.terms.mse.weight == 1.0


def test_ampose_cpu_training_smoke(tiny_root, tmp_path):
    from liftpose.train import run_train

    from .test_train import tiny_overrides

    data = [o for o in tiny_overrides(tiny_root, tmp_path / "cache", epochs=1) if "model." not in o]
    cfg = compose_cfg(
        "train",
        [
            "experiment=ampose_cpu",
            *data,
            "frames=1",
            "data.train_stride=4",
            "data.val_stride=8",
            "data.test_stride=8",
            "model.embed_dim=16",
            "model.depth=1",
            "model.num_heads=2",
            "logger=none",
            "test_ckpt=current",
        ],
    )
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run")
    doc = run_train(cfg)
    assert doc["params"] == sum(p.numel() for p in _small(embed_dim=16, depth=1).parameters())
    assert doc["config"]["model"]["_target_"].endswith("AMPose")
    assert doc["config"]["module"]["loss"]["terms"]["mse"]["weight"] == 1.0
    mpjpe = doc["metrics"]["test/mpjpe"]
    assert 0 < mpjpe < float("inf")
