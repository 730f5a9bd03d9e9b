"""Why a call: integrated gradients add up to the confidence they explain, and a
point's alpha-FeOOH call is attributed to alpha-FeOOH lines."""

import numpy as np
import pytest
import zarr

from xrdmap.classes import CLASS_NAMES
from xrdmap.config import load_phases
from xrdmap.phases import store_reference_lines

pytestmark = pytest.mark.slow

ALPHA = CLASS_NAMES.index("alpha-FeOOH")


@pytest.fixture(scope="module")
def called(tiny_store, two_versions):
    """The model, and the tiny store's patterns it calls alpha-FeOOH most surely."""
    from models.attribution import confidences
    from models.registry import load_model

    registry, v1, _, _ = two_versions
    model = load_model(registry, v1)
    patterns = zarr.open_group(tiny_store, mode="r")["samples/A_urban/patterns"][:]
    conf = confidences(model, patterns[np.isfinite(patterns).all(axis=1)])[0]
    best = np.argsort(conf[:, ALPHA])[-3:]
    return model, patterns[best], conf[best]


def test_attributions_add_up_to_the_confidence(called):
    from models.attribution import confidences, integrated_gradients

    model, patterns, _ = called
    attribution = integrated_gradients(model, patterns)
    assert attribution.shape == (3, len(CLASS_NAMES), patterns.shape[1])
    conf, base = confidences(model, patterns)
    np.testing.assert_allclose(attribution.sum(axis=2), conf - base, atol=0.03)


def test_an_alpha_feooh_call_rests_on_goethite_lines(called, tiny_store):
    from models.attribution import integrated_gradients

    model, patterns, conf = called
    assert (conf[:, ALPHA] >= 0.8).all()
    tth = zarr.open_group(tiny_store, mode="r")["samples/A_urban/tth_deg"][:]
    goethite = store_reference_lines(tiny_store, load_phases())["goethite"]
    strong = goethite.tth_deg[goethite.relative_intensity >= 10]
    near = (np.abs(tth[:, None] - strong[None, :]) <= 0.3).any(axis=1)
    for why in integrated_gradients(model, patterns)[:, ALPHA]:
        up = np.clip(why, 0, None)
        share = up[near].sum() / up.sum()
        assert share >= 2 * near.mean(), f"{share:.2f} of the push on {near.mean():.2f} of bins"


def test_queue_attributions_only_from_the_model_that_predicted(fresh_store, two_versions):
    """The relabel queue explains a point with the registry's model only when it is the
    very model whose confidences the store holds (same version, same sha256)."""
    from models.attribution import queue_attributions
    from models.registry import read_card
    from xrdmap.store import create_confidences, publish_confidences

    registry, v1, v2, _ = two_versions
    store = str(fresh_store)

    def published_by(sha: str) -> None:
        attrs = {"classes": list(CLASS_NAMES), "model_sha256": sha}
        name, _ = create_confidences(store, v1, attrs, chunk=1000)
        publish_confidences(store, v1, name)

    points = [("A_urban", 3), ("B_marine", 7)]
    published_by(read_card(registry, v1)["model_sha256"])
    why = queue_attributions(store, registry, v1, points)
    assert set(why) == set(points) and why[points[0]].shape == (len(CLASS_NAMES), 300)
    published_by(read_card(registry, v2)["model_sha256"])  # another model, same name
    assert queue_attributions(store, registry, v1, points) is None
    assert queue_attributions(store, registry, "v0099", points) is None
