"""trtgen: fast synthetic speech datasets for ASR training from a Tacotron 2 + GST model.

The runtime package never imports TensorFlow; the TensorFlow side (checkpoint import, ONNX and
TensorRT export, training) lives in the separate ``export`` package.
"""

__version__ = "0.1.0"
