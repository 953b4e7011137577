"""``make bench`` runs (its figures are printed, not asserted)."""

from __future__ import annotations

from liftpose.bench import main


def test_bench_models_run(capsys):
    main(["--skip-data", "--frames", "9", "--precision", "fp32", "--seconds", "0.05",
          "--strided-frames", "27",
          "--model-batch", "2", "--skip-system"])  # fmt: skip
    out = capsys.readouterr().out
    assert "poseformer (paper dimensions)" in out and "attn_lifter (paper dimensions)" in out
    assert "dense vs strided attention" in out and "strided (STE)" in out
