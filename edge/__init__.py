"""kerasseg's on-device runtime: numpy, OpenCV and a TFLite interpreter, never TensorFlow."""
