"""A calibrated ensemble of dense classifiers: one pre-training, several fine-tunings,
one temperature fitted on held-out labels."""

from __future__ import annotations

import numpy as np

from models.classifier import DenseClassifier
from xrdmap.calibration import ensemble_confidence, fit_temperature
from xrdmap.classes import CLASS_NAMES, exclusions
from xrdmap.config import TrainConfig
from xrdmap.features import pattern_features


class CalibratedEnsemble:
    """``n_members`` :class:`DenseClassifier` fine-tuned from one shared pre-training
    with seeds ``seed``, ``seed + 1``, ... (augmentation, rehearsal draw, dropout and
    shuffling differ), their logits divided by one temperature fitted on the validation
    labels (:func:`xrdmap.calibration.fit_temperature`).

    The confidence of a class is the mean over members of their calibrated confidences;
    the spread (standard deviation over members) says how much they disagree. A class
    that others exclude (:data:`xrdmap.classes.EXCLUDED_BY`) is gated by them in every
    member. Fitted state: ``members_``, ``exclusions_``, ``temperature_``, ``model_``
    (one Keras network of all members, output (n, n_members, n_classes), saved as one
    registry file), ``history_`` (the first member's).
    """

    def __init__(self, *, n_members: int = 5, **classifier) -> None:
        self.n_members = n_members
        self.classifier = classifier

    @classmethod
    def from_config(cls, cfg: TrainConfig, *, seed: int | None = None) -> CalibratedEnsemble:
        base = DenseClassifier.from_config(cfg, seed=seed)
        return cls(n_members=cfg.ensemble_members, **base.get_params())

    def fit(
        self,
        patterns: np.ndarray,
        labels: np.ndarray,
        val_patterns: np.ndarray | None = None,
        val_labels: np.ndarray | None = None,
        *,
        synthetic: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> CalibratedEnsemble:
        """Pre-train once on ``synthetic`` (if given), fine-tune every member on the
        labels, fit the temperature on the validation labels (1.0 without them)."""
        from models.network import build_ensemble

        seed = self.classifier.get("seed", 0)
        shared = DenseClassifier(**self.classifier)
        if synthetic is not None:
            shared.pretrain(synthetic)
        members = []
        for k in range(self.n_members):
            member = DenseClassifier(**{**self.classifier, "seed": seed + k})
            if hasattr(shared, "pretrained_"):
                member.pretrained_ = shared.pretrained_
            members.append(member.fit(patterns, labels, val_patterns, val_labels))
        self.members_ = members
        self.exclusions_ = exclusions(self.classifier.get("classes", CLASS_NAMES))
        self.history_ = members[0].history_
        self.temperature_ = 1.0
        if val_patterns is not None and len(val_patterns):
            logits = self._member_logits(pattern_features(val_patterns))
            self.temperature_ = fit_temperature(logits, val_labels, self.exclusions_)
        self.model_ = build_ensemble(
            [m.model_ for m in members], self.temperature_, self.exclusions_
        )
        return self

    def _member_logits(self, x: np.ndarray) -> np.ndarray:
        """(n_members, n, n_classes) logits of features ``x``."""
        from models.network import build_member_logits

        if not hasattr(self, "logits_model_"):
            self.logits_model_ = build_member_logits([m.model_ for m in self.members_])
        return np.moveaxis(self.logits_model_.predict(x, batch_size=16384, verbose=0), 1, 0)

    def predict_members(self, patterns: np.ndarray) -> np.ndarray:
        """(n, n_members, n_classes) calibrated confidences; NaN rows where the pattern
        is NaN (quarantined)."""
        x = pattern_features(patterns)
        out = np.full((len(x), self.n_members, len(self.classifier["classes"])), np.nan)
        ok = ~np.isnan(x).any(axis=1)
        if ok.any():
            logits = self._member_logits(x[ok])
            for k in range(self.n_members):
                out[ok, k] = ensemble_confidence(
                    logits[k : k + 1], self.temperature_, self.exclusions_
                )
        return out.astype(np.float32)

    def predict_proba(self, patterns: np.ndarray) -> np.ndarray:
        """(n, n_classes) calibrated confidences (mean over members)."""
        return self.predict_members(patterns).mean(axis=1)
