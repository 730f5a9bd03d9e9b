"""The classifier's nine multi-label classes, in output order."""

from collections.abc import Sequence

import numpy as np

CLASS_NAMES: tuple[str, ...] = (
    "Fe3O4",
    "alpha-FeOOH",
    "gamma-FeOOH",
    "Fe(BCC)",
    "Fe(FCC)",
    "Fe3C",
    "resin only",
    "Fe without peaks",
    "Other",
)
#: A class is called present at or above this confidence.
THRESHOLD = 0.5
CORROSION_PRODUCTS: tuple[str, ...] = ("Fe3O4", "alpha-FeOOH", "gamma-FeOOH")
SUBSTRATE_CLASSES: tuple[str, ...] = ("Fe(BCC)", "Fe(FCC)", "Fe3C", "Fe without peaks")

#: (excluded class, [classes that exclude it]) as column indices.
Exclusions = Sequence[tuple[int, Sequence[int]]]

#: Classes that the labeling rule defines by the absence of others: "Fe without peaks" is
#: steel in the beam with no reflection of Fe(BCC) or Fe(FCC). The network's confidence in
#: such a class is multiplied by the confidence that none of the others is there, so a
#: ferrite spot rules it out by construction (it cannot learn the rule from ~2 positives).
EXCLUDED_BY: dict[str, tuple[str, ...]] = {"Fe without peaks": ("Fe(BCC)", "Fe(FCC)")}


def exclusions(classes: Sequence[str] = CLASS_NAMES) -> list[tuple[int, list[int]]]:
    """:data:`EXCLUDED_BY` as column indices of ``classes``: (excluded, [excluding...]),
    for the rules whose classes are all among ``classes``."""
    col = {name: i for i, name in enumerate(classes)}
    return [
        (col[name], [col[o] for o in others])
        for name, others in EXCLUDED_BY.items()
        if name in col and all(o in col for o in others)
    ]


def apply_exclusions(confidence: np.ndarray, pairs: Exclusions) -> np.ndarray:
    """(n, classes) confidences with each excluded class multiplied by the product of
    (1 - confidence) of the classes that exclude it (numpy; the network does the same with
    :class:`models.network.ExcludedBy`)."""
    out = confidence.copy()
    for excluded, others in pairs:
        for other in others:
            out[..., excluded] *= 1.0 - confidence[..., other]
    return out
