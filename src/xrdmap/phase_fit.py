"""Every pattern explained by the known phases: fractions and unexplained intensity.

Each integrated pattern is fitted as a non-negative sum of

- the powder phases' line profiles, with intensities from their crystal structures
  (|F|^2 x multiplicity x Lorentz per unit volume, :mod:`xrdmap.phases`), so that a
  phase's fitted scale is proportional to its volume in the beam: reference intensity
  ratios come from the CIFs, not from the fit. Textured phases enter as a few
  March-Dollase variants (a non-negative mix of them is a mix of differently oriented
  domains; their scales add up to the phase's volume);
- the lines of coarse-grained phases one by one (a few grains in reflection: line
  intensities follow the grains, not the structure, so these phases are seen but not
  quantified);
- the epoxy halo and a smooth non-negative background (cubic B-splines).

The line shapes (zero shift, Caglioti-type instrument width, each phase's lattice
strain and crystallite size) are refined once per map, on the map's mean pattern, by
variable projection: the scales are solved by NNLS inside a least-squares fit of the
shape parameters, with weak priors that keep strain near 0 and sizes near the
configured ones where a phase is absent. Points are then fitted with those shapes
fixed, weighted by pyFAI's counting sigma plus :data:`MODEL_ERROR` of the model.

Outputs per point: the phases' scales with their standard errors, weight and volume
fractions among the quantified (powder) phases with propagated uncertainties, the
reduced chi-square, and the unexplained intensity: residual peaks above
:data:`UNEXPLAINED_SIGMAS` (at their 2theta and d), the signature of a phase no model
knows.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.interpolate import BSpline
from scipy.optimize import least_squares, nnls

from xrdmap.config import PhasesConfig
from xrdmap.line_profiles import (
    epoxy_halo,
    march_dollase,
    pseudo_voigt,
    scherrer_fwhm_deg,
    tch_pseudo_voigt_params,
)
from xrdmap.phases import ReferenceLines

#: Profile points per bin: a line about one bin wide is integrated over its bin.
OVERSAMPLE = 8
#: March-Dollase parameters of the textured phases' variants.
TEXTURE_VARIANTS = (0.35, 0.5, 0.7, 1.0, 1.4, 2.0, 2.8)
#: Knot spacing of the cubic B-spline background (deg 2theta): broader than any line
#: of the known phases but ferrihydrite's (3 nm), narrower than the background's bends.
BACKGROUND_KNOT_DEG = 4.0
#: Relative model uncertainty added in quadrature to the counting sigma: line shapes,
#: texture and strain are never exact, and strong lines would otherwise leave
#: "unexplained" residuals of many sigma. A few grains in reflection make jagged,
#: pixel-sampled lines: coarse-grained phases get a larger one.
MODEL_ERROR = 0.05
MODEL_ERROR_COARSE = 0.25
#: A coarse-grained line covers the bins where it exceeds this share of its maximum.
GRAIN_SUPPORT = 0.01
#: A residual peak is unexplained when it stands this many sigma above the fit.
UNEXPLAINED_SIGMAS = 5.0
#: Fractions are given where the quantified phases' summed scale stands this many
#: sigma above zero (elsewhere, e.g. in resin or bare steel, they would be noise).
MIN_POWDER_SIGMAS = 5.0
#: Priors of the per-map shape refinement: strain ~ N(0, STRAIN_PRIOR), log size ~
#: N(log configured size, SIZE_LOG_PRIOR); bounds on both.
STRAIN_PRIOR = 0.005
MAX_STRAIN = 0.02
SIZE_LOG_PRIOR = 1.0
SIZE_RANGE_NM = (1.5, 3000.0)
#: Bounds of the instrument's Gaussian FWHM^2 terms (deg^2): W + U tan^2(theta).
GAUSS_W_RANGE = (1e-4, 0.25)
GAUSS_U_RANGE = (0.0, 0.5)
MAX_ZERO_DEG = 0.2


@dataclass(frozen=True)
class KnownPhase:
    """One phase of ``phases.yaml`` as the fit sees it."""

    name: str
    label: str | None
    lines: ReferenceLines
    size_nm: float
    coarse: bool
    textured: bool

    @property
    def density_g_cm3(self) -> float:
        return self.lines.density_g_cm3


def known_phases(phases: PhasesConfig, lines: dict[str, ReferenceLines]) -> list[KnownPhase]:
    """The configured phases with their reference lines, in configuration order."""
    return [
        KnownPhase(
            name=name,
            label=cfg.label,
            lines=lines[name],
            size_nm=cfg.crystallite_size_nm,
            coarse=cfg.grains == "coarse",
            textured=cfg.texture_axis_hkl is not None,
        )
        for name, cfg in phases.phases.items()
    ]


@dataclass(frozen=True)
class LineShape:
    """Line-shape parameters of one map (refined by :func:`refine_line_shape`)."""

    zero_deg: float
    gauss_w: float
    gauss_u: float
    strain: dict[str, float]
    size_nm: dict[str, float]

    @classmethod
    def initial(cls, phases: list[KnownPhase]) -> LineShape:
        return cls(
            zero_deg=0.0,
            gauss_w=0.008,
            gauss_u=0.0,
            strain={p.name: 0.0 for p in phases},
            size_nm={p.name: p.size_nm for p in phases},
        )

    def to_record(self) -> dict:
        return {
            "zero_deg": self.zero_deg,
            "gauss_fwhm2_deg2": {"W": self.gauss_w, "U": self.gauss_u},
            "strain": self.strain,
            "size_nm": self.size_nm,
        }

    @classmethod
    def from_record(cls, record: dict) -> LineShape:
        return cls(
            zero_deg=float(record["zero_deg"]),
            gauss_w=float(record["gauss_fwhm2_deg2"]["W"]),
            gauss_u=float(record["gauss_fwhm2_deg2"]["U"]),
            strain={k: float(v) for k, v in record["strain"].items()},
            size_nm={k: float(v) for k, v in record["size_nm"].items()},
        )


def _fine_axis(tth_deg: np.ndarray) -> np.ndarray:
    step = float(np.diff(tth_deg).mean())
    offsets = ((np.arange(OVERSAMPLE) + 0.5) / OVERSAMPLE - 0.5) * step
    return (tth_deg[:, None] + offsets[None, :]).ravel()


def background_basis(tth_deg: np.ndarray) -> np.ndarray:
    """(nbins, k) cubic B-splines with knots every :data:`BACKGROUND_KNOT_DEG`: any
    non-negative combination is a smooth non-negative background."""
    lo, hi = float(tth_deg[0]), float(tth_deg[-1])
    n_inner = max(int(np.ceil((hi - lo) / BACKGROUND_KNOT_DEG)), 1)
    inner = np.linspace(lo, hi, n_inner + 1)
    knots = np.concatenate([[lo] * 3, inner, [hi] * 3])
    x = np.clip(tth_deg, lo, hi - 1e-9 * (hi - lo))
    return BSpline.design_matrix(x, knots, 3).toarray()


@dataclass(frozen=True)
class PhaseBasis:
    """The linear model of a map: one column per fitted component.

    ``column_phase[j]``: index into ``phases`` of column ``j``'s phase, or -1 for the
    background and the epoxy halo.
    """

    tth_deg: np.ndarray
    phases: list[KnownPhase]
    matrix: np.ndarray
    column_phase: np.ndarray
    column_name: list[str]

    @property
    def n_phases(self) -> int:
        return len(self.phases)

    @cached_property
    def grain_columns(self) -> np.ndarray:
        """(columns,) bool: the lines of coarse-grained phases."""
        coarse = np.array([p.coarse for p in self.phases] + [False])
        return coarse[self.column_phase] & (self.column_phase >= 0)

    @cached_property
    def powder_columns(self) -> np.ndarray:
        """(columns,) bool: the profiles of powder phases."""
        return (self.column_phase >= 0) & ~self.grain_columns

    def model_error(self, coef: np.ndarray) -> np.ndarray:
        """Expected model error per bin: :data:`MODEL_ERROR` of the powder lines and
        :data:`MODEL_ERROR_COARSE` of the coarse-grained ones."""
        powder, grains = self.powder_columns, self.grain_columns
        return np.hypot(
            MODEL_ERROR * (self.matrix[:, powder] @ coef[powder]),
            MODEL_ERROR_COARSE * (self.matrix[:, grains] @ coef[grains]),
        )

    def grain_support(self, coef: np.ndarray) -> np.ndarray:
        """Bins under the fitted lines of coarse-grained phases: a few grains make
        irregular lines, so a residual there is not read as an unknown phase."""
        fitted = self.grain_columns & (coef > 0)
        if not fitted.any():
            return np.zeros(self.matrix.shape[0], dtype=bool)
        cols = self.matrix[:, fitted]
        return (cols > GRAIN_SUPPORT * cols.max(axis=0)).any(axis=1)

    def phase_columns(self, k: int) -> np.ndarray:
        return np.flatnonzero(self.column_phase == k)


def _line_rows(
    phase: KnownPhase, shape: LineShape, fine: np.ndarray, nbins: int, wavelength_a: float
) -> np.ndarray:
    """(n_lines, nbins) unit-area lines of ``phase``, averaged over each bin."""
    lines = phase.lines
    d = lines.d_a * (1.0 + shape.strain[phase.name])
    tth = np.degrees(2 * np.arcsin(np.clip(wavelength_a / (2 * d), -1, 1))) + shape.zero_deg
    tan = np.tan(np.radians(tth) / 2)
    fwhm_g = np.sqrt(np.maximum(shape.gauss_w + shape.gauss_u * tan**2, 1e-8))
    fwhm_l = scherrer_fwhm_deg(tth, shape.size_nm[phase.name], wavelength_a)
    fwhm, eta = tch_pseudo_voigt_params(fwhm_g, fwhm_l)
    prof = pseudo_voigt(fine[None, :], tth[:, None], fwhm[:, None], eta[:, None])
    return prof.reshape(len(tth), nbins, OVERSAMPLE).mean(axis=2)


def build_basis(
    tth_deg: np.ndarray,
    wavelength_a: float,
    phases: list[KnownPhase],
    shape: LineShape,
) -> PhaseBasis:
    """The columns of the model on a map's 2theta axis, for line shapes ``shape``."""
    tth = np.asarray(tth_deg, dtype=np.float64)
    fine = _fine_axis(tth)
    columns: list[np.ndarray] = []
    owner: list[int] = []
    names: list[str] = []
    for k, phase in enumerate(phases):
        if len(phase.lines.tth_deg) == 0:
            continue
        rows = _line_rows(phase, shape, fine, tth.size, wavelength_a)
        if phase.coarse:
            for row, hkl in zip(rows, phase.lines.hkl, strict=True):
                columns.append(row)
                owner.append(k)
                names.append(f"{phase.name} {''.join(str(i) for i in hkl)}")
            continue
        weights = phase.lines.intensity
        variants = TEXTURE_VARIANTS if phase.textured else (1.0,)
        for r in variants:
            md = march_dollase(phase.lines.texture_cos2, phase.lines.texture_weight, r)
            columns.append((md * weights) @ rows)
            owner.append(k)
            names.append(phase.name if r == 1.0 else f"{phase.name} r={r:g}")
    columns.append(epoxy_halo(tth, wavelength_a))
    owner.append(-1)
    names.append("epoxy halo")
    for j, col in enumerate(background_basis(tth).T):
        columns.append(col)
        owner.append(-1)
        names.append(f"background {j}")
    return PhaseBasis(
        tth_deg=tth,
        phases=phases,
        matrix=np.stack(columns, axis=1),
        column_phase=np.asarray(owner),
        column_name=names,
    )


def _weighted_nnls(matrix: np.ndarray, y: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Non-negative coefficients minimizing sum(((matrix @ c - y) / sigma)^2); the
    columns are scaled to unit norm first (conditioning)."""
    a = matrix / sigma[:, None]
    norm = np.linalg.norm(a, axis=0)
    norm[norm == 0] = 1.0
    coef, _ = nnls(a / norm, y / sigma, maxiter=50 * a.shape[1])
    return coef / norm


def effective_sigma(sigma: np.ndarray, model_error: np.ndarray) -> np.ndarray:
    """Counting sigma and the model's error (:meth:`PhaseBasis.model_error`) in
    quadrature."""
    floor = max(float(np.median(sigma)) * 1e-3, 1e-12)
    return np.sqrt(np.maximum(sigma, floor) ** 2 + model_error**2)


def fit_point(basis: PhaseBasis, y: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Coefficients of one pattern: NNLS on counting sigma, then again with the model
    error of the lines added (so that strong lines do not dominate)."""
    coef = _weighted_nnls(basis.matrix, y, np.maximum(sigma, 1e-12))
    return _weighted_nnls(basis.matrix, y, effective_sigma(sigma, basis.model_error(coef)))


def refine_line_shape(
    tth_deg: np.ndarray,
    wavelength_a: float,
    phases: list[KnownPhase],
    mean_pattern: np.ndarray,
    mean_sigma: np.ndarray,
) -> LineShape:
    """Line shapes of a map from its mean pattern (variable projection, see module)."""
    init = LineShape.initial(phases)
    names = [p.name for p in phases]
    size0 = np.log([init.size_nm[n] for n in names])

    def unpack(x: np.ndarray) -> LineShape:
        n = len(names)
        return LineShape(
            zero_deg=float(x[0]),
            gauss_w=float(x[1]),
            gauss_u=float(x[2]),
            strain=dict(zip(names, map(float, x[3 : 3 + n]), strict=True)),
            size_nm=dict(zip(names, map(float, np.exp(x[3 + n : 3 + 2 * n])), strict=True)),
        )

    sigma = effective_sigma(mean_sigma, MODEL_ERROR * mean_pattern)

    def residuals(x: np.ndarray) -> np.ndarray:
        basis = build_basis(tth_deg, wavelength_a, phases, unpack(x))
        coef = _weighted_nnls(basis.matrix, mean_pattern, sigma)
        fit = (basis.matrix @ coef - mean_pattern) / sigma
        n = len(names)
        prior = np.concatenate(
            [x[3 : 3 + n] / STRAIN_PRIOR, (x[3 + n : 3 + 2 * n] - size0) / SIZE_LOG_PRIOR]
        )
        return np.concatenate([fit, prior])

    x0 = np.concatenate([[0.0, init.gauss_w, 0.0], np.zeros(len(names)), size0])
    lo = np.concatenate(
        [
            [-MAX_ZERO_DEG, GAUSS_W_RANGE[0], GAUSS_U_RANGE[0]],
            np.full(len(names), -MAX_STRAIN),
            np.full(len(names), np.log(SIZE_RANGE_NM[0])),
        ]
    )
    hi = np.concatenate(
        [
            [MAX_ZERO_DEG, GAUSS_W_RANGE[1], GAUSS_U_RANGE[1]],
            np.full(len(names), MAX_STRAIN),
            np.full(len(names), np.log(SIZE_RANGE_NM[1])),
        ]
    )
    result = least_squares(residuals, np.clip(x0, lo, hi), bounds=(lo, hi), x_scale="jac")
    return unpack(result.x)


def map_line_shape(
    tth_deg: np.ndarray,
    wavelength_a: float,
    phases: list[KnownPhase],
    patterns: np.ndarray,
    sigma: np.ndarray,
) -> LineShape:
    """Line shapes of a map from its valid points (finite patterns and sigma): refined
    on their mean pattern, whose sigma is theirs over the square root of their number;
    the initial shapes when no point is valid."""
    valid = np.isfinite(patterns).all(axis=1) & np.isfinite(sigma).all(axis=1)
    if not valid.any():
        return LineShape.initial(phases)
    mean_sigma = np.sqrt((sigma[valid] ** 2).mean(axis=0) / valid.sum())
    return refine_line_shape(
        tth_deg, wavelength_a, phases, patterns[valid].mean(axis=0), mean_sigma
    )


@dataclass(frozen=True)
class PointFits:
    """Fit results of a block of points (NaN rows: points without a valid pattern).

    ``scale``/``scale_sigma`` (n, n_phases): each phase's summed coefficients and
    standard error; ``weight_fraction``/``volume_fraction`` (n, n_phases) among the
    quantified (powder) phases, NaN for coarse-grained ones and where no powder phase
    is measurably there (:data:`MIN_POWDER_SIGMAS`), with ``*_sigma``;
    ``reduced_chi2`` (n,); ``unexplained`` (n,): the strongest unexplained residual
    peak in sigma (0 when none); ``unexplained_tth`` (n,): its 2theta (NaN when none);
    ``halo`` (n,): the epoxy halo's height (resin in the beam); ``background`` (n,):
    the smooth background's mean over the axis (Fe fluorescence and air scatter).
    """

    scale: np.ndarray
    scale_sigma: np.ndarray
    weight_fraction: np.ndarray
    weight_fraction_sigma: np.ndarray
    volume_fraction: np.ndarray
    volume_fraction_sigma: np.ndarray
    reduced_chi2: np.ndarray
    unexplained: np.ndarray
    unexplained_tth: np.ndarray
    halo: np.ndarray
    background: np.ndarray


def residual_peaks(
    z: np.ndarray, tth_deg: np.ndarray, threshold: float
) -> list[tuple[float, float]]:
    """Residual peaks (2theta, significance) of a normalized residual ``z``: runs of
    bins whose residual, alone or summed over three bins (a line's width), exceeds
    ``threshold`` sigma; each at its residual-weighted centre."""
    z3 = np.convolve(z, np.ones(3), mode="same") / np.sqrt(3)
    score = np.maximum(z, z3)
    above = score >= threshold
    peaks: list[tuple[float, float]] = []
    if not above.any():
        return peaks
    edges = np.flatnonzero(np.diff(np.concatenate([[0], above.astype(np.int8), [0]])))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        seg = slice(start, stop)
        w = np.clip(z[seg], 0, None)
        centre = (
            float(np.sum(w * tth_deg[seg]) / w.sum()) if w.sum() > 0 else float(tth_deg[seg].mean())
        )
        peaks.append((centre, float(score[seg].max())))
    return peaks


def _fractions(a: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shares a / sum(a) and their standard errors from the covariance of ``a``."""
    total = a.sum()
    if total <= 0:
        return np.full(a.size, np.nan), np.full(a.size, np.nan)
    share = a / total
    jac = (np.eye(a.size) - share[:, None]) / total  # d share_p / d a_q
    var = np.einsum("pq,qr,pr->p", jac, cov, jac)
    return share, np.sqrt(np.clip(var, 0, None))


def fit_points(basis: PhaseBasis, patterns: np.ndarray, sigma: np.ndarray) -> PointFits:
    """Fit every row of ``patterns`` (n, nbins) with its pyFAI ``sigma``."""
    n, n_phases = patterns.shape[0], basis.n_phases
    owner = basis.column_phase
    quantified = np.array([not p.coarse for p in basis.phases])
    density = np.array([p.density_g_cm3 for p in basis.phases])
    to_phase = np.zeros((n_phases, owner.size))
    to_phase[owner[owner >= 0], np.flatnonzero(owner >= 0)] = 1.0
    out = {
        name: np.full((n, n_phases), np.nan)
        for name in (
            "scale",
            "scale_sigma",
            "weight_fraction",
            "weight_fraction_sigma",
            "volume_fraction",
            "volume_fraction_sigma",
        )
    }
    chi2 = np.full(n, np.nan)
    halo = np.full(n, np.nan)
    background = np.full(n, np.nan)
    halo_col = basis.column_name.index("epoxy halo")
    background_cols = np.array([c.startswith("background") for c in basis.column_name])
    unexplained = np.full(n, np.nan)
    unexplained_tth = np.full(n, np.nan)
    q = np.flatnonzero(quantified)
    for i in range(n):
        y, s = patterns[i].astype(np.float64), sigma[i].astype(np.float64)
        if not (np.isfinite(y).all() and np.isfinite(s).all()):
            continue
        coef = fit_point(basis, y, s)
        model = basis.matrix @ coef
        halo[i] = coef[halo_col] * basis.matrix[:, halo_col].max()
        background[i] = float((basis.matrix[:, background_cols] @ coef[background_cols]).mean())
        eff = effective_sigma(s, basis.model_error(coef))
        z = (y - model) / eff
        dof = max(y.size - int(np.count_nonzero(coef)), 1)
        chi2[i] = float(np.sum(z**2) / dof)
        peaks = residual_peaks(
            np.where(basis.grain_support(coef), 0.0, z), basis.tth_deg, UNEXPLAINED_SIGMAS
        )
        if peaks:
            tth, score = max(peaks, key=lambda p: p[1])
            unexplained[i], unexplained_tth[i] = score, tth
        else:
            unexplained[i] = 0.0
        # covariance of the active coefficients (inactive ones are held at zero)
        a = basis.matrix / eff[:, None]
        active = coef > 0
        cov = np.zeros((owner.size, owner.size))
        if active.any():
            cov[np.ix_(active, active)] = np.linalg.pinv(a[:, active].T @ a[:, active])
        phase_cov = to_phase @ cov @ to_phase.T
        scale = to_phase @ coef
        scale_sigma = np.sqrt(np.clip(np.diag(phase_cov), 0, None))
        # an absent phase: the one-sigma scale its untextured profile could hide
        for k in np.flatnonzero(scale == 0):
            cols = basis.phase_columns(int(k))
            if cols.size:
                scale_sigma[k] = 1.0 / max(float(np.linalg.norm(a[:, cols], axis=0).max()), 1e-30)
        out["scale"][i], out["scale_sigma"][i] = scale, scale_sigma
        sub = phase_cov[np.ix_(q, q)]
        if scale[q].sum() < MIN_POWDER_SIGMAS * np.sqrt(max(sub.sum(), 0.0)) or not q.size:
            continue  # no powder phase measurably there (resin, bare steel): no fractions
        vol, vol_s = _fractions(scale[q], sub)
        mass = scale[q] * density[q]
        wt, wt_s = _fractions(mass, sub * np.outer(density[q], density[q]))
        out["volume_fraction"][i, q], out["volume_fraction_sigma"][i, q] = vol, vol_s
        out["weight_fraction"][i, q], out["weight_fraction_sigma"][i, q] = wt, wt_s
    return PointFits(
        **out,
        reduced_chi2=chi2,
        unexplained=unexplained,
        unexplained_tth=unexplained_tth,
        halo=halo,
        background=background,
    )
