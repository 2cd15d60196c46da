"""Quantization-aware training of MobileNetV3 models: every layer covered, and the ranges warmed up from data."""
import numpy as np

from kerasseg.backend import keras, layers, tf
from kerasseg.export import qat
from kerasseg.models import build_model


def test_every_lraspp_mobilenetv3_layer_is_covered_by_a_quantize_config():
    model = build_model(arch="lraspp", backbone="mobilenetv3_small", num_classes=3)
    groups = qat.coverage(model)
    assert groups["unsupported"] == []
    kinds = {type(model.get_layer(name)).__name__ for name in groups["output"]}
    assert kinds == {"Normalize", "HardSwish", "HardSigmoid", "Multiply", "ResizeToReference"}
    gates = [name for name in groups["output"] if name.endswith("squeeze_excite/Mul")]
    assert len(gates) == 9 and "lraspp_gate" in groups["output"]


def _scaled_model():
    """A conv whose outputs span about [0, 100] (beyond tfmot's initial [-6, 6]), then batch norm."""
    image = keras.Input((8, 8, 3), name="image")
    x = layers.Conv2D(4, 1, kernel_initializer="ones", name="conv")(image)
    x = layers.ReLU(name="relu")(x)
    x = layers.Conv2D(2, 1, kernel_initializer=keras.initializers.Constant(0.1), name="scores")(x)
    x = layers.BatchNormalization(name="bn")(x)
    return keras.Model(image, x)


def _ranges(model):
    return {v.name: v.numpy() for v in model.variables if v.name.endswith(("_min:0", "_max:0"))}


def test_warm_up_sets_ranges_from_the_data_and_keeps_every_other_variable():
    quantized = qat.quantize_aware(_scaled_model())
    before = {v.name: v.numpy().copy() for v in quantized.variables}
    images = np.random.default_rng(0).uniform(0, 255, (16, 8, 8, 3)).astype(np.float32)
    batches = tf.data.Dataset.from_tensor_slices((images, np.zeros((16, 8, 8), np.int32))).batch(4).repeat()
    assert qat.warm_up_ranges(quantized, batches, steps=8) == 8
    ranges = _ranges(quantized)
    relu_max = next(value for name, value in ranges.items() if "quant_relu" in name and name.endswith("_max:0"))
    assert relu_max > 200  # the ReLU's output reaches about 3 x 255, far past the initial 6
    assert sorted(float(value) for name, value in ranges.items() if name.startswith("quantize_layer")) == [0, 255]
    for variable in quantized.variables:  # kernels, batch-norm statistics, step counters: untouched
        if not variable.name.endswith(("_min:0", "_max:0")):
            np.testing.assert_array_equal(variable.numpy(), before[variable.name], err_msg=variable.name)
    assert qat.warm_up_ranges(_scaled_model(), batches) == 0  # a float model has no ranges to warm up


def test_fine_tune_warms_up_the_ranges_first():
    quantized = qat.quantize_aware(_scaled_model())
    images = np.random.default_rng(0).uniform(0, 255, (16, 8, 8, 3)).astype(np.float32)
    batches = tf.data.Dataset.from_tensor_slices((images, np.zeros((16, 8, 8), np.int32))).batch(4).repeat()
    qat.fine_tune(quantized, batches, steps=1)
    relu_max = next(value for name, value in _ranges(quantized).items()
                    if "quant_relu" in name and name.endswith("_max:0"))
    assert relu_max > 200  # one step at tfmot's decay of 0.999 alone would leave it near 6
