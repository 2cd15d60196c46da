import numpy as np
import pytest

from edge import benchmark
from edge.interpreter import load_interpreter


def test_measure_reports_percentiles(tiny_models):
    result = benchmark.measure(tiny_models.int8, threads=1, runs=20, warmup=2)
    assert result.latencies_ms.shape == (20,) and (result.latencies_ms > 0).all()
    assert result.percentile(50) <= result.percentile(90) <= result.percentile(99)
    assert result.device == "cpu" and result.runtime == "ai_edge_litert"
    assert result.fps == 1000.0 / np.mean(result.latencies_ms)


def test_random_input_matches_dtype_and_range():
    rng = np.random.default_rng(0)
    x = benchmark.random_input({"dtype": np.int8, "shape": np.array([1, 4, 4, 3])}, rng)
    assert x.dtype == np.int8 and x.shape == (1, 4, 4, 3) and x.min() < 0
    y = benchmark.random_input({"dtype": np.float32, "shape": np.array([2])}, rng)
    assert y.dtype == np.float32 and np.abs(y).max() <= 1


def test_cli_compares_models_and_threads_side_by_side(tiny_models, capsys):
    code = benchmark.main(["--model", tiny_models.uint8, "--vs", tiny_models.float32, "--threads", "1", "2",
                           "--runs", "5", "--warmup", "1"])
    out = capsys.readouterr().out
    assert code == 0
    rows = [line for line in out.splitlines() if line.rstrip().endswith("x") and ".tflite" in line]
    assert len(rows) == 4
    assert [r.split()[0].endswith("uint8.tflite") for r in rows] == [True, True, False, False]
    assert [r.split()[2] for r in rows] == ["1", "2", "1", "2"]
    assert rows[0].rstrip().endswith("1.00x")
    assert "p50 ms" in out and "p99 ms" in out
    # Then how XNNPACK took each model: once per model, not per thread count.
    assert f"{tiny_models.uint8}: 1 XNNPACK partition for 1 of 3 ops; outside: QUANTIZE 2" in out.splitlines()
    assert sum("XNNPACK partition" in line for line in out.splitlines()) == 2


def test_delegation_counts_xnnpack_partitions_and_the_ops_it_leaves_out(tiny_models):
    assert benchmark.delegation(tiny_models.int8) == benchmark.Delegation(ops=1, partitions=1, left_out={})
    ids = benchmark.delegation(tiny_models.class_ids)  # conv, then ARG_MAX and its CAST, which XNNPACK lacks
    assert ids == benchmark.Delegation(ops=3, partitions=1, left_out={"ARG_MAX": 1, "CAST": 1})
    assert ids.describe() == "1 XNNPACK partition for 1 of 3 ops; outside: ARG_MAX 1, CAST 1"
    with pytest.raises(ValueError, match="only ai_edge_litert can turn delegate node fusion off, not tensorflow"):
        load_interpreter(tiny_models.int8, runtime="tensorflow", fuse_delegate_nodes=False)


def test_cli_edgetpu_without_library_explains(tiny_models, capsys):
    code = benchmark.main(["--model", tiny_models.uint8, "--edgetpu", "--runs", "3", "--warmup", "0"])
    captured = capsys.readouterr()
    assert code == 1
    assert "libedgetpu.so.1" in captured.err and "not installed" in captured.err
    assert "cpu" in captured.out  # the CPU row measured before the Edge TPU one is still printed
