"""Keras model builders, training and the model registry (no Prefect here)."""

import os

# TensorFlow's C++ start-up chatter is not for users; errors still show. Its oneDNN
# notice is printed before logging is set up, whatever the level, unless oneDNN's
# custom operations are off; for networks this small they bring nothing measurable.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
