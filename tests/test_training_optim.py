"""The learning-rate schedule and the optimisers."""
import pytest

from kerasseg.training.optim import PolyWarmup, build_optimizer


def test_poly_schedule_with_warmup():
    schedule = PolyWarmup(learning_rate=0.1, total_steps=110, warmup_steps=10)
    assert float(schedule(0)) == pytest.approx(0.1 * 1 / 10)
    assert float(schedule(9)) == pytest.approx(0.1)
    assert float(schedule(10)) == pytest.approx(0.1)
    assert float(schedule(60)) == pytest.approx(0.1 * 0.5 ** 0.9, rel=1e-5)
    assert float(schedule(110)) == pytest.approx(0.0, abs=1e-7)
    assert PolyWarmup.from_config(schedule.get_config()).get_config() == schedule.get_config()
    with pytest.raises(ValueError, match="warmup_steps"):
        PolyWarmup(learning_rate=0.1, total_steps=10, warmup_steps=10)


def test_optimizers():
    sgd = build_optimizer(name="sgd", learning_rate=0.1, momentum=0.9, weight_decay=5e-4)
    assert sgd.momentum == 0.9 and sgd.weight_decay == pytest.approx(5e-4)
    assert type(build_optimizer(name="adamw", learning_rate=1e-3, weight_decay=1e-4)).__name__ == "AdamW"
    with pytest.raises(ValueError, match="optimizer: expected one of"):
        build_optimizer(name="rmsprop", learning_rate=0.1)
