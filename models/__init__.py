"""Keras model builders, training and the model registry (no Prefect here)."""

import os

# TensorFlow's C++ start-up chatter (oneDNN, absl) is not for users; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
