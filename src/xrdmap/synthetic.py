"""Training patterns synthesized from the reference structures, for pre-training.

A few expert labels cannot show the network every phase in every mixture: a random
draw of 139 points usually holds no Fe(FCC) and a handful of Fe3C. Before it sees
them, the network learns where each phase's lines are from patterns built here, on
the store's own 2theta axis. The generator is deliberately generic and knows nothing
of the specimens: it is not the beamtime simulator.

- Background: the smooth lower envelope of real patterns of the same beamtime
  (unlabeled, drawn at random: resin halo, Fe fluorescence, air scatter as measured),
  times a random gain. Some are scaled far down (:data:`LOW_BACKGROUND_FRACTION`:
  instruments without fluorescence, lab diffractometers), some get an amorphous halo
  at a random d-spacing (:data:`HALO_FRACTION`: other resins, organics, glass).
- Phases: each configured phase independently with probability :data:`PHASE_PROBABILITY`.
  Lines from the CIF (:mod:`xrdmap.phases`), moved by a lattice change per pattern and
  phase (up to :data:`LATTICE_SPREAD`: substitution, another reference) and a zero
  shift per pattern (:data:`ZERO_SHIFT_DEG`), pseudo-Voigt profiles whose width
  combines an instrument term and Scherrer broadening from a crystallite size drawn
  around the configured one or, for :data:`NANO_FRACTION` of them, anywhere in
  :data:`SIZE_RANGE_NM` (nanocrystalline to instrument-limited); line intensities varied
  one by one (texture), strongly enough in :data:`STRONG_TEXTURE_FRACTION` of them to
  reverse line ratios. Coarse-grained phases give a few sharp lines instead (grains in
  reflection), at random among their lines. Heights relative to the background are
  drawn log-uniformly, from invisible to dominant.
- Noise: Gaussian with the beamtime's own per-bin variance-to-intensity ratio (the
  Poisson statistics of the pixels integrated in each bin, from pyFAI's sigma).
- Labels: a class is 1 when one of its phases is seen (its contribution reaches
  :data:`SEEN_ABOVE_REST` above everything else and :data:`SEEN_SIGMAS` noise
  standard deviations in some bin), else 0. "resin only" and "Fe without peaks" depend
  on what the background came from: where the store's phase fit says (steel: the Fe
  fluorescence of the steel; resin: the epoxy halo, no rust, no steel;
  :func:`xrdmap.cross_section.point_kinds`), a pattern whose background came from
  steel (resin) and in which no phase is seen is "Fe without peaks" ("resin only"),
  and any other is not; but where only phases other than Fe(BCC) and Fe(FCC) are seen
  on steel, "Fe without peaks" is -1: its rule (:data:`xrdmap.classes.EXCLUDED_BY`)
  asks whether steel still fills half the beam, which a background cannot tell
  (full preset, 5 seeds: labeled 1, recall 0.99 but precision 0.71, F1 0.83; labeled
  0, F1 0.84; unknown, F1 0.90). Without a fit, or after a background was scaled down or given
  a halo, they are -1 (unknown), and the loss ignores them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from xrdmap.classes import CLASS_NAMES, EXCLUDED_BY
from xrdmap.config import PhasesConfig, TrainConfig
from xrdmap.cross_section import point_kinds
from xrdmap.errors import StoreError
from xrdmap.features import lower_envelope
from xrdmap.phases import ReferenceLines, store_reference_lines
from xrdmap.store import open_store, random_valid_points, stored_wavelength_a, tth_axis

PHASE_PROBABILITY = 0.3
EMPTY_FRACTION = 0.1  #: patterns with background only
HEIGHT_RANGE = (0.01, 10.0)  #: strongest line height / background there (powder)
SPOT_HEIGHT_RANGE = (0.05, 50.0)  #: one grain's line height / background there
SPOTS_MEAN = 2.0  #: mean number of grains in reflection of a coarse phase
INSTRUMENT_FWHM_DEG = (0.04, 0.15)
SIZE_LOG_SIGMA = 0.5  #: spread of the crystallite size around the configured one
NANO_FRACTION = 0.2  #: phase draws whose size is anywhere in SIZE_RANGE_NM instead
SIZE_RANGE_NM = (3.0, 300.0)  #: log-uniform: broad nanocrystalline to instrument-limited
TEXTURE_LOG_SIGMA = 0.5  #: line-to-line intensity variation of powder phases
STRONG_TEXTURE_FRACTION = 0.2  #: phase draws with STRONG_TEXTURE_LOG_SIGMA instead
STRONG_TEXTURE_LOG_SIGMA = 1.5  #: enough to reverse the ratio of two lines
#: Largest relative d-spacing change, uniform, one per pattern and phase: oxides a
#: percent off their reference (substitution); steel phases less (alloying, carbon).
LATTICE_SPREAD = {"powder": 0.01, "coarse": 0.003}
ZERO_SHIFT_DEG = 0.05  #: largest 2theta zero shift, uniform, one per pattern
BACKGROUND_GAIN_LOG_SIGMA = 0.3
LOW_BACKGROUND_FRACTION = 0.1  #: backgrounds scaled down by LOW_BACKGROUND_SCALE
LOW_BACKGROUND_SCALE = (0.01, 0.2)  #: log-uniform: no fluorescence, low air scatter
HALO_FRACTION = 0.15  #: backgrounds given an amorphous halo at a random 2theta
HALO_FWHM_DEG = (4.0, 12.0)  #: broader than nanocrystalline lines (ferrihydrite: ~2 deg)
HALO_HEIGHT = (0.1, 2.0)  #: log-uniform, relative to the background at its centre
SEEN_ABOVE_REST = 0.10
SEEN_SIGMAS = 5.0
OVERSAMPLE = 4  #: profile points per bin (integrates sharp lines over the bin)
UNKNOWN = -1
#: Where a background came from (:func:`background_kinds`); UNKNOWN without a fit.
STEEL, RESIN, OTHER = 1, 2, 0
_KIND_CLASSES = {STEEL: "Fe without peaks", RESIN: "resin only"}
_SCHERRER_K = 0.9


@dataclass(frozen=True)
class NoiseModel:
    """Per-bin variance of an integrated pattern: ``variance = gain * intensity``."""

    gain: np.ndarray

    @classmethod
    def from_patterns(cls, patterns: np.ndarray, sigma: np.ndarray) -> NoiseModel:
        """Median of sigma^2 / I over valid points, bin by bin (pyFAI's Poisson sigma)."""
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN bins: refused below
            ratio = np.where(patterns > 0, sigma**2 / patterns, np.nan)
            gain = np.nanmedian(ratio, axis=0)
        if np.isnan(gain).any():
            raise ValueError("noise model: a 2theta bin has no valid pattern")
        return cls(gain=gain.astype(np.float64))


def background_library(patterns: np.ndarray) -> np.ndarray:
    """Smooth lower envelopes of real patterns (NaN rows dropped): backgrounds."""
    ok = ~np.isnan(patterns).any(axis=1)
    return lower_envelope(np.clip(patterns[ok], 0, None)).astype(np.float64)


#: Lines drawn per block of :meth:`PatternSynthesizer._profiles`: 2,000 x 1,200 profile
#: points (8 bytes each, 19 MB) stay in the cache; 20,000 made every step a fresh block of
#: 190 MB (3-4x slower, the same sums in the same order).
PROFILE_BLOCK = 2000


def _pseudo_voigt(dx: np.ndarray, fwhm: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Unit-height pseudo-Voigt, broadcast over rows (dx: rows x points), computed in
    place of ``dx`` and one other block: ``eta / (1 + u) + (1 - eta) exp(-ln 2 u)``
    with ``u = (2 dx / fwhm)^2``, operation by operation."""
    u = dx
    u *= 2
    u /= fwhm
    np.square(u, out=u)
    profile = 1 + u
    np.divide(eta, profile, out=profile)
    u *= -np.log(2)
    np.exp(u, out=u)
    u *= 1 - eta
    profile += u
    return profile


class PatternSynthesizer:
    """Draws labeled synthetic patterns on a store's 2theta axis.

    Parameters
    ----------
    tth_deg : (nbins,) bin centres, uniform step.
    lines : reference lines per phase name (:func:`xrdmap.phases.all_reference_lines`).
    phases : the phase configuration (class label, crystallite size, grain type).
    wavelength_a : X-ray wavelength.
    backgrounds : (m, nbins) background library (:func:`background_library`).
    noise : the beamtime's noise model.
    kinds : (m,) where each background came from (:data:`STEEL`, :data:`RESIN`,
        :data:`OTHER` or :data:`UNKNOWN`); None: all unknown.
    """

    def __init__(
        self,
        tth_deg: np.ndarray,
        lines: dict[str, ReferenceLines],
        phases: PhasesConfig,
        wavelength_a: float,
        backgrounds: np.ndarray,
        noise: NoiseModel,
        kinds: np.ndarray | None = None,
    ) -> None:
        self.tth = np.asarray(tth_deg, dtype=np.float64)
        step = np.diff(self.tth).mean()
        offsets = ((np.arange(OVERSAMPLE) + 0.5) / OVERSAMPLE - 0.5) * step
        self.fine = (self.tth[:, None] + offsets[None, :]).ravel()
        self.lines = lines
        self.phases = phases
        self.wavelength_a = wavelength_a
        if len(backgrounds) == 0:
            raise ValueError("background library is empty")
        self.backgrounds = backgrounds
        self.noise = noise
        self.kinds = (
            np.full(len(backgrounds), UNKNOWN, np.int8) if kinds is None else np.asarray(kinds)
        )
        if self.kinds.shape != (len(backgrounds),):
            raise ValueError("one kind per background")

    def _profiles(self, rows: np.ndarray, centres, fwhm, eta, heights, n: int) -> np.ndarray:
        """Sum of line profiles per pattern: rows[i] gets a line at centres[i]."""
        out = np.zeros((n, self.tth.size))
        for start in range(0, len(rows), PROFILE_BLOCK):
            s = slice(start, start + PROFILE_BLOCK)
            dx = self.fine[None, :] - centres[s, None]
            prof = _pseudo_voigt(dx, fwhm[s, None], eta[s, None])
            binned = prof.reshape(len(dx), self.tth.size, OVERSAMPLE).mean(axis=2)
            np.add.at(out, rows[s], binned * heights[s, None])
        return out

    def _phase_shapes(
        self, name: str, background: np.ndarray, zero_deg: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """(n, nbins) contribution of one phase over ``background`` (n, nbins), its lines
        moved by ``zero_deg`` (n,) and a lattice change of its own.

        Powder phases: strongest point scaled to 1 (the caller sets the height).
        Coarse phases: each grain's line at its own height over the background.
        """
        n = len(background)
        ref, cfg = self.lines[name], self.phases.phases[name]
        theta = np.radians(ref.tth_deg) / 2
        spread = LATTICE_SPREAD[cfg.grains]
        strain = rng.uniform(-spread, spread, size=n)
        # d -> d (1 + e): 2theta moves by -2 tan(theta) e (radians)
        centres = (
            ref.tth_deg[None, :]
            - np.degrees(2 * np.tan(theta))[None, :] * strain[:, None]
            + zero_deg[:, None]
        )
        inst = rng.uniform(*INSTRUMENT_FWHM_DEG, size=n)
        n_bins = self.tth.size
        if cfg.grains == "coarse":
            n_spots = 1 + rng.poisson(SPOTS_MEAN - 1, size=n)
            rows = np.repeat(np.arange(n), n_spots)
            p = ref.intensity / ref.intensity.sum()
            which = rng.choice(len(p), size=rows.size, p=p)
            spot_centres = centres[rows, which]
            under = background[rows, np.searchsorted(self.tth, spot_centres).clip(0, n_bins - 1)]
            low, high = np.log(SPOT_HEIGHT_RANGE)
            heights = under * np.exp(rng.uniform(low, high, size=rows.size))
            eta = rng.uniform(0.0, 0.5, size=rows.size)
            return self._profiles(rows, spot_centres, inst[rows], eta, heights, n)
        size_nm = cfg.crystallite_size_nm * np.exp(rng.normal(0.0, SIZE_LOG_SIGMA, size=n))
        anywhere = rng.random(n) < NANO_FRACTION
        low, high = np.log(SIZE_RANGE_NM)
        size_nm[anywhere] = np.exp(rng.uniform(low, high, size=int(anywhere.sum())))
        scherrer = np.degrees(
            _SCHERRER_K * self.wavelength_a / (size_nm[:, None] * 10.0 * np.cos(theta)[None, :])
        )
        fwhm = np.sqrt(inst[:, None] ** 2 + scherrer**2)
        texture_sigma = np.where(
            rng.random(n) < STRONG_TEXTURE_FRACTION, STRONG_TEXTURE_LOG_SIGMA, TEXTURE_LOG_SIGMA
        )
        texture = np.exp(rng.normal(size=(n, ref.tth_deg.size)) * texture_sigma[:, None])
        heights = ref.intensity[None, :] * texture / fwhm  # integrated intensity -> height
        eta = np.repeat(rng.uniform(0.2, 0.8, size=n)[:, None], ref.tth_deg.size, axis=1)
        rows = np.repeat(np.arange(n), ref.tth_deg.size)
        shapes = self._profiles(
            rows, centres.ravel(), fwhm.ravel(), eta.ravel(), heights.ravel(), n
        )
        return shapes / shapes.max(axis=1, keepdims=True)

    def _backgrounds(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(n, nbins) backgrounds and (n,) their kinds (UNKNOWN where altered)."""
        pick = rng.integers(0, len(self.backgrounds), size=n)
        background = self.backgrounds[pick] * np.exp(
            rng.normal(0.0, BACKGROUND_GAIN_LOG_SIGMA, (n, 1))
        )
        kinds = self.kinds[pick].copy()
        low = rng.random(n) < LOW_BACKGROUND_FRACTION
        lo, hi = np.log(LOW_BACKGROUND_SCALE)
        background[low] *= np.exp(rng.uniform(lo, hi, size=(int(low.sum()), 1)))
        halo = rng.random(n) < HALO_FRACTION
        k = int(halo.sum())
        centre = rng.uniform(self.tth[0], self.tth[-1], size=k)
        fwhm = rng.uniform(*HALO_FWHM_DEG, size=k)
        lo, hi = np.log(HALO_HEIGHT)
        under = background[halo, np.searchsorted(self.tth, centre).clip(0, self.tth.size - 1)]
        height = under * np.exp(rng.uniform(lo, hi, size=k))
        u = (self.tth[None, :] - centre[:, None]) / fwhm[:, None]
        background[halo] += height[:, None] * np.exp(-4 * np.log(2) * u**2)
        kinds[low | halo] = UNKNOWN
        return background, kinds

    def draw(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` patterns (n, nbins) float32 and labels (n, 9) int8 (1, 0 or -1)."""
        background, kinds = self._backgrounds(n, rng)
        zero_deg = rng.uniform(-ZERO_SHIFT_DEG, ZERO_SHIFT_DEG, size=n)
        names = list(self.phases.phases)
        present = rng.random((n, len(names))) < PHASE_PROBABILITY
        present[rng.random(n) < EMPTY_FRACTION] = False
        contributions = np.zeros((len(names), n, self.tth.size))
        for k, name in enumerate(names):
            rows = np.flatnonzero(present[:, k])
            if rows.size == 0:
                continue
            shapes = self._phase_shapes(name, background[rows], zero_deg[rows], rng)
            if self.phases.phases[name].grains != "coarse":
                low, high = np.log(HEIGHT_RANGE)
                height = np.exp(rng.uniform(low, high, size=rows.size))
                shapes *= (height * background[rows, shapes.argmax(axis=1)])[:, None]
            contributions[k, rows] = shapes
        clean = background + contributions.sum(axis=0)
        sigma = np.sqrt(self.noise.gain[None, :] * np.clip(clean, 0, None))
        rest = clean[None] - contributions
        seen = (
            (contributions >= SEEN_ABOVE_REST * rest) & (contributions >= SEEN_SIGMAS * sigma)
        ).any(axis=2)  # (phases, n)
        labels = np.zeros((n, len(CLASS_NAMES)), dtype=np.int8)
        for k, name in enumerate(names):
            col = CLASS_NAMES.index(self.phases.phases[name].label)
            labels[:, col] |= seen[k].astype(np.int8)
        anything = seen.any(axis=0)
        for kind, cls in _KIND_CLASSES.items():
            label = np.where(kinds == kind, ~anything, False).astype(np.int8)
            if cls in EXCLUDED_BY:  # other phases seen: whether it still holds is unknown
                excluders = [CLASS_NAMES.index(c) for c in EXCLUDED_BY[cls]]
                undecided = (kinds == kind) & anything & ~labels[:, excluders].any(axis=1)
                label[undecided] = UNKNOWN
            label[kinds == UNKNOWN] = UNKNOWN
            labels[:, CLASS_NAMES.index(cls)] = label
        patterns = clean + rng.normal(size=clean.shape) * sigma
        return patterns.astype(np.float32), labels


def background_kinds(store: str, samples: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Where the points (``samples``, ``points``) lie by the store's phase fit:
    :data:`STEEL`, :data:`RESIN` or :data:`OTHER`; :data:`UNKNOWN` in unfitted samples."""
    kinds = np.full(len(points), UNKNOWN, np.int8)
    for sample in np.unique(samples):
        try:
            where = point_kinds(store, str(sample))
        except StoreError:  # no phase fit: unknown
            continue
        mine = samples == sample
        p = points[mine]
        kinds[mine] = np.select([where.steel[p], where.resin[p]], [STEEL, RESIN], OTHER)
    return kinds


def store_synthesizer(
    store: str, phases: PhasesConfig, *, n_backgrounds: int, seed: int
) -> PatternSynthesizer:
    """A pattern synthesizer on the store's 2theta axis and wavelength, with backgrounds
    and noise taken from ``n_backgrounds`` valid points drawn at random over all samples
    (and their kinds from the store's phase fit, where there is one)."""
    root = open_store(store)
    drawn = random_valid_points(root, n_backgrounds, seed)
    finite = np.isfinite(drawn.patterns).all(axis=1)
    return PatternSynthesizer(
        tth_axis(root),
        store_reference_lines(store, phases),
        phases,
        stored_wavelength_a(root),
        background_library(drawn.patterns[finite]),
        NoiseModel.from_patterns(drawn.patterns, drawn.sigma),
        kinds=background_kinds(store, drawn.samples[finite], drawn.points[finite]),
    )


def synthetic_patterns(
    store: str, phases: PhasesConfig, cfg: TrainConfig, seed: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """The pre-training set of ``cfg`` for this store (None when switched off)."""
    if cfg.pretrain_patterns == 0:
        return None
    synth = store_synthesizer(store, phases, n_backgrounds=cfg.pretrain_backgrounds, seed=seed)
    return synth.draw(cfg.pretrain_patterns, np.random.default_rng(seed))
