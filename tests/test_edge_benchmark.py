import numpy as np

from edge import benchmark


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


def test_cli_edgetpu_without_library_explains(tiny_models, capsys):
    code = benchmark.main(["--model", tiny_models.uint8, "--edgetpu", "--runs", "3", "--warmup", "0"])
    captured = capsys.readouterr()
    assert code == 1
    assert "libedgetpu.so.1" in captured.err and "not installed" in captured.err
    assert "cpu" in captured.out  # the CPU row measured before the Edge TPU one is still printed
