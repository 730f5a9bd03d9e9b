"""The abstain rule: undecided classes, members that disagree."""

import numpy as np

from xrdmap.trust import abstain_mask, disagreeing, undecided


def test_undecided_or_disagreeing_points_abstain():
    conf = np.array([[0.02, 0.97], [0.5, 0.99], [0.05, 0.95], [np.nan, np.nan], [0.81, 0.19]])
    spread = np.array([[0.01, 0.01], [0.0, 0.0], [0.2, 0.0], [np.nan, np.nan], [0.0, 0.0]])
    assert undecided(conf).tolist() == [False, True, False, False, False]
    assert disagreeing(spread, 5).tolist() == [False, False, True, False, False]
    assert abstain_mask(conf, spread).tolist() == [False, True, True, False, False]
    assert abstain_mask(conf, None).tolist() == [False, True, False, False, False]
