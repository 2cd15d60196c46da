"""The conversion modes ``convert.py`` offers, one enum member each, and the base of every choice enum."""
from __future__ import annotations

import enum


class Choice(enum.Enum):
    """An enum of command-line choices: ``value`` is the choice, ``filename_suffix`` its form in file names."""

    @property
    def filename_suffix(self) -> str:
        return self.value.replace("-", "_")

    @classmethod
    def parse(cls, value):
        """The member named by ``value`` (a member, its value, its name or its file-name suffix)."""
        if isinstance(value, cls):
            return value
        for member in cls:
            if value in (member.value, member.name, member.name.lower(), member.filename_suffix):
                return member
        raise ValueError(f"{cls.__name__.lower()}: unknown value {value!r}; valid choices are "
                         f"{[m.value for m in cls]}")


class Mode(Choice):
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
