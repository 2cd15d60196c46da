"""Quantization-aware fine-tuning: coverage of every layer, fine-tuning, full-integer conversion."""
import numpy as np
import pytest
from export_helpers import LABELS, device_predict, synthetic_batches, tiny_model, trained_tiny_model

from kerasseg.backend import keras, layers, tf
from kerasseg.export import qat, tflite
from kerasseg.export.modes import Mode
from kerasseg.export.parity import device_segmenter, to_uint8

SIZE = 32


@pytest.mark.slow
def test_every_layer_of_the_tiny_model_is_quantization_aware():
    """Slow: tfmot's quantize_apply clones the model layer by layer (a few seconds even for this tiny model)."""
    model = tiny_model()
    groups = qat.coverage(model)
    assert groups["unsupported"] == []
    assert groups["output"] == ["rescaling"]  # our config: keras has none for Rescaling
    quantized = qat.quantize_aware(model)
    wrapped = {layer.name for layer in quantized.layers if type(layer).__name__ == "QuantizeWrapperV2"}
    original = {layer.name for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)}
    assert wrapped == {"quant_" + name for name in original}


def test_an_unknown_layer_is_an_error_not_left_float():
    image = keras.Input((None, None, 3), name="image")
    x = layers.Conv2D(3, 1)(image)
    x = layers.Lambda(lambda t: t * 2.0, name="doubler")(x)
    with pytest.raises(ValueError, match=r"doubler \(Lambda\)"):
        qat.quantize_aware(keras.Model(image, x))


def test_input_range_is_pinned_to_raw_pixels():
    quantized = qat.quantize_aware(tiny_model())
    layer = next(l for l in quantized.layers if type(l).__name__ == "QuantizeLayer")
    values = {w.name.split("/")[-1]: float(w.numpy()) for w in layer.weights if "optimizer_step" not in w.name}
    assert sorted(values.values()) == [0.0, 255.0]


@pytest.mark.slow
def test_qat_fine_tunes_and_converts_to_a_full_integer_model_that_beats_chance():
    """Slow: trains the tiny model, fine-tunes it quantization-aware and converts it; its own tiny model, since
    the check is that QAT learns (no shared run is small enough to fine-tune in seconds)."""
    batches = synthetic_batches(count=16, size=SIZE)
    model = trained_tiny_model(batches, epochs=15)
    quantized = qat.quantize_aware(model)
    images = np.concatenate([b[0] for b in batches])
    masks = np.concatenate([b[1] for b in batches])
    train = tf.data.Dataset.from_tensor_slices((images, masks)).batch(4).repeat()
    loss = qat.fine_tune(quantized, train, steps=10)
    assert np.isfinite(loss)
    content = tflite.convert(quantized, mode=Mode.QAT, input_size=(SIZE, SIZE),
                             calibration=lambda: tflite.calibration_images(batches, steps=2))
    assert tflite.float_ops(content) == []
    correct = total = 0
    with device_segmenter(content) as segmenter:
        assert segmenter.input_quantization == (1.0, 0)
        for image, mask in zip(images, masks):
            pred = device_predict(segmenter, to_uint8(image))
            keep = mask != 255
            correct += int(np.sum(pred[keep] == mask[keep]))
            total += int(keep.sum())
    majority = max(np.mean(masks[masks != 255] == c) for c in range(len(LABELS)))
    assert correct / total > majority + 0.05


def test_zero_qat_steps_is_an_error():
    with pytest.raises(ValueError, match="qat_steps"):
        qat.fine_tune(None, None, steps=0)


@pytest.mark.slow
def test_the_quantization_aware_copy_keeps_each_concatenation_input_order(monkeypatch):
    """Slow: two quantize_apply calls (a few seconds). tfmot 0.8 finds a layer's inputs in the model's layer order
    (tensorflow/model-optimization#1179): without our fix, this DeepLab-like head (a 1x1 branch and an image-pooling
    branch, concatenated) came out as [pooling, 1x1], and QAT fine-tuned a different model than the one trained."""
    from kerasseg.models.layers import ResizeToReference

    def conv_bn_relu(x, name):
        x = layers.Conv2D(4, 1, use_bias=False, name=name)(x)
        return layers.ReLU(name=name + "_relu")(layers.BatchNormalization(name=name + "_bn")(x))

    image = keras.Input((8, 8, 3), name="image")
    features = conv_bn_relu(image, "features")
    pooled = conv_bn_relu(layers.GlobalAveragePooling2D(keepdims=True, name="pool")(features), "pooled")
    branches = [conv_bn_relu(features, "branch"), ResizeToReference(name="resize")([pooled, features])]
    model = keras.Model(image, layers.Concatenate(name="concat")(branches))
    quantized = qat.quantize_aware(model)
    inbound = quantized.get_layer("quant_concat")._inbound_nodes[0].inbound_layers
    assert [layer.name for layer in inbound] == ["quant_branch_relu", "quant_resize"]

    import contextlib
    monkeypatch.setattr(qat, "_inputs_in_order", contextlib.nullcontext)  # tfmot as it is
    with pytest.raises(RuntimeError, match=r"reordered the inputs of layer 'concat': \['branch_relu', 'resize'\]"):
        qat.quantize_aware(model)
