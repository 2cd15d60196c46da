"""Tiny models and data for the export tests."""
import numpy as np

from kerasseg.backend import keras, layers

LABELS = ("background", "red", "green")


def synthetic_batches(*, count=8, size=32, batch_size=4, seed=0):
    """(image float32 [0, 255], mask int32) batches: coloured squares on grey noise, 255 at their borders."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(count // batch_size):
        images = rng.uniform(60, 140, (batch_size, size, size, 3)).astype(np.float32)
        masks = np.zeros((batch_size, size, size), np.int32)
        for b in range(batch_size):
            for cls, colour in ((1, (230, 30, 30)), (2, (30, 230, 30))):
                h, w = rng.integers(size // 4, size // 2, 2)
                y, x = rng.integers(0, size - h), rng.integers(0, size - w)
                images[b, y:y + h, x:x + w] = colour
                masks[b, y:y + h, x:x + w] = cls
            masks[b, 0, :] = 255
        batches.append((images, masks))
    return batches


def device_predict(segmenter, image_rgb):
    """The edge Segmenter's class map for one RGB uint8 image (it takes BGR frames, as OpenCV delivers them)."""
    return segmenter.segment(np.ascontiguousarray(image_rgb[..., ::-1]))


def tiny_model(num_classes=len(LABELS), seed=0):
    """An encoder-decoder with the layer kinds segmentation heads use: dilated depthwise conv, resize, concat."""
    keras.utils.set_random_seed(seed)
    image = keras.Input((None, None, 3), name="image")
    x = layers.Rescaling(1 / 127.5, offset=-1.0, name="rescaling")(image)
    skip = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(skip)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU(6.0)(x)
    x = layers.DepthwiseConv2D(3, padding="same", dilation_rate=2)(x)
    x = layers.UpSampling2D(2, interpolation="bilinear")(x)
    x = layers.Concatenate()([x, skip])
    x = layers.Conv2D(num_classes, 1)(x)
    logits = layers.Activation("linear", dtype="float32", name="logits")(x)
    return keras.Model(image, logits, name="tiny")


def trained_tiny_model(batches, *, epochs=30, seed=0):
    model = tiny_model(seed=seed)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss)
    images = np.concatenate([b[0] for b in batches])
    masks = np.concatenate([b[1] for b in batches])
    model.fit(images, masks, epochs=epochs, batch_size=4, verbose=0)
    return model


TINY_RUN_DATASET = "synthetic:4?val=2&size=32"
TINY_RUN_LABELS = ("background", "circle", "square", "triangle", "cross")


def make_tiny_run(folder, *, seed=3):
    """A run directory of ``tiny_model`` in a second: best.keras, last.keras (other weights), spec.json (32x32)
    and config.yaml (trained at 32x48 on ``TINY_RUN_DATASET`` with ``seed``)."""
    import os

    from edge.artifact import Spec
    from edge.files import write_yaml

    os.makedirs(folder, exist_ok=True)
    tiny_model(num_classes=len(TINY_RUN_LABELS), seed=0).save(os.path.join(folder, "best.keras"))
    tiny_model(num_classes=len(TINY_RUN_LABELS), seed=1).save(os.path.join(folder, "last.keras"))
    Spec(labels=TINY_RUN_LABELS, input_size=(32, 32)).save(os.path.join(folder, "spec.json"))
    write_yaml(os.path.join(folder, "config.yaml"),
               {"train": {"dataset": TINY_RUN_DATASET, "image_size": [32, 48], "seed": seed},
                "model": {"arch": "fcn32s", "num_classes": len(TINY_RUN_LABELS)}})
    return str(folder)
