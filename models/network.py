"""The Keras dense (fully connected) multi-label network."""

from __future__ import annotations

import keras

from xrdmap.classes import Exclusions


@keras.saving.register_keras_serializable(package="xrdmap")
class ExcludedBy(keras.layers.Layer):
    """Confidences (n, classes) -> the same, each excluded class multiplied by the product
    of (1 - confidence) of the classes that exclude it (``pairs``:
    :func:`xrdmap.classes.exclusions`). No gradient flows into the excluding classes:
    they learn from their own labels only, the excluded class's logit learns the rest."""

    def __init__(self, pairs: Exclusions, **kwargs) -> None:
        super().__init__(**kwargs)
        self.pairs = [(int(i), [int(j) for j in others]) for i, others in pairs]

    def call(self, confidence):
        ops = keras.ops
        columns = [confidence[:, k] for k in range(confidence.shape[-1])]
        for excluded, others in self.pairs:
            for other in others:
                columns[excluded] = columns[excluded] * (
                    1.0 - ops.stop_gradient(confidence[:, other])
                )
        return ops.stack(columns, axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "pairs": self.pairs}


def build_dense_classifier(
    n_inputs: int,
    n_classes: int,
    *,
    hidden: tuple[int, ...] = (256, 128),
    dropout: float = 0.2,
    l2: float = 1e-4,
    exclusions: Exclusions = (),
) -> keras.Model:
    """Pattern features -> one sigmoid confidence per class (its input, the logit, is the
    output of the layer named ``logit``: an ensemble calibrates it), passed through
    :class:`ExcludedBy` where classes exclude others."""
    inputs = keras.Input(shape=(n_inputs,), name="pattern")
    x = inputs
    for i, width in enumerate(hidden):
        x = keras.layers.Dense(
            width,
            activation="relu",
            kernel_regularizer=keras.regularizers.L2(l2),
            name=f"dense_{i}",
        )(x)
        x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
    logit = keras.layers.Dense(n_classes, name="logit")(x)
    outputs = keras.layers.Activation("sigmoid", name="confidence")(logit)
    if exclusions:
        outputs = ExcludedBy(exclusions, name="excluded_by")(outputs)
    return keras.Model(inputs, outputs, name="xrdmap_dense")


def _member_logit(member: keras.Model, k: int) -> keras.Model:
    """Features -> the logits of ``member`` (its layer named ``logit``)."""
    return keras.Model(member.inputs, member.get_layer("logit").output, name=f"member_{k}")


def _stacked(per_member: list, n_classes: int):
    """(n, n_classes) tensors, one per member -> one (n, n_members, n_classes)."""
    stacked = [
        keras.layers.Reshape((1, n_classes), name=f"stack_{k}")(x) for k, x in enumerate(per_member)
    ]
    return keras.layers.Concatenate(axis=1, name="members")(stacked)


def build_member_logits(members: list[keras.Model]) -> keras.Model:
    """One network of ``members``' logits: features -> (n, n_members, n_classes). One
    traced function for all members (a call per member made TensorFlow warn of
    "excessive retracing" at the fifth)."""
    inputs = keras.Input(shape=members[0].input_shape[1:], name="pattern")
    logits = [_member_logit(member, k)(inputs) for k, member in enumerate(members)]
    return keras.Model(
        inputs, _stacked(logits, members[0].output_shape[-1]), name="xrdmap_member_logits"
    )


def build_ensemble(
    members: list[keras.Model], temperature: float, exclusions: Exclusions = ()
) -> keras.Model:
    """One network of ``members`` (each from :func:`build_dense_classifier`): features ->
    (n, n_members, n_classes), each member's sigmoid of its logit divided by
    ``temperature`` (calibration), then its class ``exclusions``. Standard layers and
    :class:`ExcludedBy` only: it loads in safe mode."""
    inputs = keras.Input(shape=members[0].input_shape[1:], name="pattern")
    probs = []
    for k, member in enumerate(members):
        scaled = keras.layers.Rescaling(1.0 / temperature, name=f"calibrate_{k}")(
            _member_logit(member, k)(inputs)
        )
        prob = keras.layers.Activation("sigmoid", name=f"confidence_{k}")(scaled)
        if exclusions:
            prob = ExcludedBy(exclusions, name=f"excluded_by_{k}")(prob)
        probs.append(prob)
    return keras.Model(inputs, _stacked(probs, members[0].output_shape[-1]), name="xrdmap_ensemble")


@keras.saving.register_keras_serializable(package="xrdmap")
class BalancedBinaryCrossentropy(keras.losses.Loss):
    """Binary cross-entropy with per-class weights on positives (rare classes count).

    Targets below 0 mean "unknown" and add nothing (synthetic patterns cannot say
    whether a background came from resin or from steel).
    """

    def __init__(self, pos_weight: list[float], name: str = "balanced_bce", **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.pos_weight = [float(w) for w in pos_weight]

    def call(self, y_true, y_pred):
        ops = keras.ops
        eps = keras.config.epsilon()
        y_pred = ops.clip(y_pred, eps, 1 - eps)
        w = ops.convert_to_tensor(self.pos_weight, dtype=y_pred.dtype)
        y_true = ops.cast(y_true, y_pred.dtype)
        known = ops.cast(y_true >= 0, y_pred.dtype)
        loss = -(w * y_true * ops.log(y_pred) + (1 - y_true) * ops.log(1 - y_pred)) * known
        return ops.sum(loss, axis=-1) / ops.maximum(ops.sum(known, axis=-1), 1.0)

    def get_config(self) -> dict:
        return {**super().get_config(), "pos_weight": self.pos_weight}
