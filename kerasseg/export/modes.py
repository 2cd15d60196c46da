"""The conversion modes ``convert.py`` offers, one enum member each."""
from __future__ import annotations

import enum


class Mode(enum.Enum):
    """How a Keras model becomes a ``.tflite`` file.

    ``value`` is the command-line flag without dashes and the file-name suffix.
    """

    FLOAT32 = "float32"
    FLOAT16 = "float16"
    DYNAMIC_RANGE = "dynamic-range"
    INT8 = "int8"
    QAT = "qat"
    EDGETPU = "edgetpu"

    @property
    def full_integer(self) -> bool:
        """True when every tensor between input and output is 8-bit."""
        return self in (Mode.INT8, Mode.QAT, Mode.EDGETPU)

    @property
    def needs_calibration(self) -> bool:
        """True when the converter needs representative training images."""
        return self in (Mode.INT8, Mode.EDGETPU)

    @property
    def needs_training_data(self) -> bool:
        """True when the mode draws from the training pipeline at all."""
        return self.full_integer

    @property
    def filename_suffix(self) -> str:
        return self.value.replace("-", "_")

    @classmethod
    def parse(cls, value: "str | Mode") -> "Mode":
        if isinstance(value, Mode):
            return value
        for mode in cls:
            if value in (mode.value, mode.name, mode.name.lower(), mode.filename_suffix):
                return mode
        raise ValueError(f"mode: unknown value {value!r}; valid choices are {[m.value for m in cls]}")
