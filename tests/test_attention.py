"""Strided sparse attention: the pairs-only path equals the masked dense reference."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from liftpose.models.blocks import Attention
from liftpose.models.blocks.attention import (
    local_attention,
    masked_strided_attention,
    residue_attention,
    strided_attention,
    strided_mask,
)


def _qkv(b: int, h: int, n: int, d: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, n, d, generator=g, requires_grad=True) for _ in range(3)]


def _values_and_grads(fn, q, k, v, grad_out) -> list[torch.Tensor]:
    out = fn(q, k, v)
    grads = torch.autograd.grad(out, (q, k, v), grad_out)
    return [out.detach(), *grads]


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 140),
    heads=st.sampled_from([1, 2, 3, 4, 8]),
    stride=st.one_of(st.none(), st.integers(1, 20)),
    scale=st.sampled_from([None, 0.3]),
    seed=st.integers(0, 2**16),
)
def test_sparse_strided_equals_masked_reference(n, heads, stride, scale, seed) -> None:
    q, k, v = _qkv(2, heads, n, 8, seed)
    grad_out = torch.randn(2, heads, n, 8, generator=torch.Generator().manual_seed(seed + 1))
    got = _values_and_grads(
        lambda *t: strided_attention(*t, stride, scale=scale), q, k, v, grad_out
    )
    ref = _values_and_grads(
        lambda *t: masked_strided_attention(*t, stride, scale=scale), q, k, v, grad_out
    )
    for name, a, b in zip(("output", "dq", "dk", "dv"), got, ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=f"{name} differs")


@pytest.mark.parametrize("n", [1, 2, 13, 27, 64, 81])
def test_parts_are_their_patterns(n: int) -> None:
    """Local heads see the band, strided heads the residue classes (each checked alone)."""
    q, k, v = (t.detach() for t in _qkv(1, 2, n, 4, n))
    ell = max(1, round(math.sqrt(n)))
    mask = strided_mask(n, 2)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(local_attention(q[:, :1], k[:, :1], v[:, :1], ell // 2), ref[:, :1])
    torch.testing.assert_close(residue_attention(q[:, 1:], k[:, 1:], v[:, 1:], ell), ref[:, 1:])


def _attention_flops(fn, n: int) -> int:
    q, k, v = (t.detach() for t in _qkv(1, 8, n, 16, 0))
    # the math backend runs matmuls the counter sees (it does not count the CPU flash kernel)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        fn(q, k, v)
    return counter.get_total_flops()


def test_sparse_path_skips_the_masked_pairs() -> None:
    """Work grows as n^1.5 (4x the length: 8x the FLOPs), not n^2 (16x), and at 1024 tokens it
    is a small fraction of the dense work."""
    small, large = (_attention_flops(strided_attention, n) for n in (256, 1024))
    dense = _attention_flops(masked_strided_attention, 1024)
    assert 6.5 < large / small < 9.5, large / small
    assert large < 0.15 * dense, (large, dense)


def test_attention_layer_switches_between_sparse_and_masked() -> None:
    torch.manual_seed(0)
    attn = Attention(32, num_heads=4, qkv_bias=True, pattern="strided").train()
    attn.attn_drop.p = 0.0  # deterministic in train mode
    x = torch.randn(2, 50, 32, requires_grad=True)
    out = attn(x)
    (gx,) = torch.autograd.grad(out.square().sum(), x)
    attn.sparse = False
    ref = attn(x)
    (gref,) = torch.autograd.grad(ref.square().sum(), x)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gx, gref, rtol=1e-5, atol=1e-5)
    assert "(masked)" in repr(attn)


def test_attention_dropout_on_the_sparse_path() -> None:
    """Attention dropout applies to the sparse path in training only."""
    torch.manual_seed(0)
    attn = Attention(32, num_heads=4, pattern="strided", attn_drop=0.5)
    x = torch.randn(2, 30, 32)
    with torch.no_grad():
        attn.train()
        a, b = attn(x), attn(x)
        attn.eval()
        c, d = attn(x), attn(x)
    assert not torch.allclose(a, b)
    torch.testing.assert_close(c, d)


@pytest.mark.parametrize("mask_kind", [None, "bool", "float"])
def test_attend_half_precision_cpu_path(mask_kind) -> None:
    """bf16 on the CPU takes the plain matmul-softmax-matmul path: the same attention, to bf16
    rounding, in values and gradients; float32 is scaled_dot_product_attention itself."""
    from liftpose.models.blocks.attention import attend

    q, k, v = _qkv(2, 3, 10, 8, 0)
    mask = None
    if mask_kind == "bool":
        mask = strided_mask(10, 3)
    elif mask_kind == "float":
        mask = torch.randn(3, 10, 10)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.4)
    torch.testing.assert_close(attend(q, k, v, mask, scale=0.4), ref, rtol=0, atol=0)
    half = [t.detach().bfloat16().requires_grad_() for t in (q, k, v)]
    out = attend(*half, mask, scale=0.4)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, rtol=0.05, atol=0.05)
    grads = torch.autograd.grad(out.float().sum(), half)
    refs = torch.autograd.grad(ref.sum(), (q, k, v))
    for g, r in zip(grads, refs):
        torch.testing.assert_close(g.float(), r, rtol=0.1, atol=0.1)
