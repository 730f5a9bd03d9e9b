"""Keras model builders, training and the model registry (no Prefect here)."""
