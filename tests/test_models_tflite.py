"""The models convert to plain TFLite ops: what the Edge TPU option promises."""
import numpy as np
import pytest

from kerasseg.backend import tf
from kerasseg.export.tflite import variables_holder
from kerasseg.models import build_model
from models_helpers import random_images


def _convert_batch1(model, height, width):
    function = tf.function(lambda x: model(x, training=False)).get_concrete_function(
        tf.TensorSpec((1, height, width, 3), tf.float32))
    return tf.lite.TFLiteConverter.from_concrete_functions([function], variables_holder(model)).convert()


@pytest.mark.slow
def test_dilated_models_convert_to_native_dilated_convolutions_and_agree_with_keras():
    """Slow: one float32 conversion of a stride-8 DeepLab at a static 67x93 (batch 1), not through the export's
    serving function: nothing else converts the bare model at an odd size."""
    config = dict(arch="deeplabv3plus", alpha=0.35, output_stride=8, edgetpu_friendly=True)
    from ai_edge_litert.interpreter import Interpreter
    height, width = 67, 93
    model = build_model(num_classes=3, input_shape=(height, width, 3), **config)
    interpreter = Interpreter(model_content=_convert_batch1(model, height, width))
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    # At a static batch of 1, atrous convolutions fuse into DEPTHWISE_CONV_2D; no SpaceToBatch ops remain.
    assert not ops & {"SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND"}, ops
    assert {"DEPTHWISE_CONV_2D", "RESIZE_BILINEAR"} <= ops
    interpreter.allocate_tensors()
    image = random_images(1, height, width)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
    interpreter.invoke()
    lite = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(lite, model(image, training=False).numpy(), rtol=1e-3, atol=1e-3)
