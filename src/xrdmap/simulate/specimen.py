"""Where each phase is: a corroded carbon-steel cross-section embedded in resin.

Seen from the side, bottom to top: steel (ferrite with pearlite colonies holding
cementite, rare retained-austenite islands), a rough steel/rust interface, an inner
rust layer (goethite with magnetite bands and some lepidocrocite; akaganeite where
chloride is high), an outer layer
dominated by lepidocrocite, mixed zones between them, resin-filled pores and cracks,
rare patches of other phases (ferrihydrite, hematite), and resin on top. Thicknesses
and fractions follow the sample's corrosion condition. Phases no model knows
(``simulation.yaml`` ``foreign_phases``: dust on the rust surface, sea salt in the
rust of chloride-rich conditions) sit in small particles.

Every scan point integrates the phases under its beam footprint (supersampled), so
points on a boundary hold mixtures. Smooth random fields are sums of random Fourier
modes, evaluated exactly at any coordinate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xrdmap.config import ConditionConfig, PhasesConfig, SimulationConfig

#: Beam-footprint supersampling per axis.
FOOTPRINT_SAMPLES = 4
#: Log-normal spread of the March-Dollase parameter r from point to point.
TEXTURE_LOG_SIGMA = 0.35
#: Width (um) of the blend between inner and outer rust.
LAYER_BLEND_UM = 3.0
#: Akaganeite (beta-FeOOH) grows in the inner rust where chloride is deposited at least
#: this fast (mg/m2/day); its share there is the rate over AKAGANEITE_CHLORIDE_SCALE.
AKAGANEITE_MIN_CHLORIDE = 10.0
AKAGANEITE_CHLORIDE_SCALE = 400.0
#: Surface dust lies within this distance (um) of the rust surface, either side.
SURFACE_DUST_UM = 8.0
#: Correlation length (um) of the foreign-phase particle fields.
PARTICLE_UM = 3.0


class RandomField:
    """A smooth Gaussian random field with unit variance and correlation length ``ell``."""

    def __init__(self, rng: np.random.Generator, ell_um: float, n_modes: int = 96, dims: int = 2):
        self.k = rng.normal(0.0, 1.0 / ell_um, size=(n_modes, dims))
        self.phase = rng.uniform(0, 2 * np.pi, size=n_modes)
        self.amp = np.sqrt(2.0 / n_modes)

    def __call__(self, *coords: np.ndarray) -> np.ndarray:
        arg = sum(c[..., None] * self.k[:, i] for i, c in enumerate(coords)) + self.phase
        return self.amp * np.cos(arg).sum(axis=-1)


@dataclass(frozen=True)
class SpecimenMap:
    """Ground truth of one sample, one row per scan point (row-major over the grid).

    ``fractions`` columns: the configured phases in order, then resin; rows sum to 1.
    ``spots``: grains in diffraction condition per coarse phase; ``fe_signal``: Fe
    fluorescence relative to pure ferrite; ``texture_r``: March-Dollase parameter per
    point and phase (1 where the phase has no preferred orientation); ``height_um``:
    height above the mean steel surface; ``zone``: 0 steel, 1 inner rust, 2 outer rust,
    3 resin (at the beam centre).
    """

    phase_names: tuple[str, ...]
    coarse_names: tuple[str, ...]
    x_um: np.ndarray
    y_um: np.ndarray
    height_um: np.ndarray
    fractions: np.ndarray
    spots: np.ndarray
    fe_signal: np.ndarray
    zone: np.ndarray
    texture_r: np.ndarray

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.phase_names, "resin")


ZONE_NAMES = ("steel", "inner rust", "outer rust", "resin")


def _composition(
    x: np.ndarray,
    h: np.ndarray,
    cond: ConditionConfig,
    sim: SimulationConfig,
    names: tuple[str, ...],
    fields: dict,
) -> tuple[np.ndarray, np.ndarray]:
    """Phase composition (n, n_phases + 1) and zone (n,) at points (x, h) in um."""
    n = x.size
    col = {name: i for i, name in enumerate((*names, "resin"))}
    comp = np.zeros((n, len(col)))
    t = cond.rust_thickness_um
    h0 = cond.roughness_um * fields["surface"](x)
    h1 = h0 + t * cond.inner_fraction * (1 + 0.25 * fields["inner"](x))
    h2 = np.maximum(h0 + t * (1 + 0.12 * fields["top"](x)), h1 + 4.0)

    steel = h < h0
    rust = (h >= h0) & (h < h2)
    zone = np.full(n, 3, dtype=np.int8)
    zone[steel] = 0
    zone[rust & (h < h1)] = 1
    zone[rust & (h >= h1)] = 2

    # Steel: ferrite, pearlite colonies with cementite lamellae, retained austenite.
    sub = sim.substrate
    pearlite = fields["pearlite"](x, h) > _gauss_quantile(1 - sub.pearlite_area_fraction)
    austenite = fields["austenite"](x, h) > _gauss_quantile(1 - sub.austenite_area_fraction)
    cem = np.where(pearlite, sub.cementite_in_pearlite, 0.0)
    aus = np.where(austenite & ~pearlite, 0.7, 0.0)
    comp[steel, col["cementite"]] = cem[steel]
    comp[steel, col["austenite"]] = aus[steel]
    comp[steel, col["ferrite"]] = (1 - cem - aus)[steel]

    # Rust: inner (goethite + magnetite bands), outer (lepidocrocite), blended.
    ratio = cond.alpha_gamma_ratio
    alpha_in = np.clip(1.6 * ratio / (1 + 1.6 * ratio) + 0.2 * fields["alpha_in"](x, h), 0, 1)
    alpha_out = np.clip(0.4 * ratio / (1 + 0.4 * ratio) + 0.2 * fields["alpha_out"](x, h), 0, 1)
    mag = np.clip(cond.magnetite_fraction + 0.3 * fields["magnetite"](x, h), 0, 0.9)
    w_in = 1 / (1 + np.exp((h - h1) / (LAYER_BLEND_UM / 4)))
    alpha = w_in * alpha_in * (1 - mag) + (1 - w_in) * alpha_out
    magnetite = w_in * mag
    gamma = 1 - alpha - magnetite
    akaganeite = np.zeros(n)
    if "akaganeite" in col and cond.chloride_mg_m2_day >= AKAGANEITE_MIN_CHLORIDE:
        level = cond.chloride_mg_m2_day / AKAGANEITE_CHLORIDE_SCALE
        akaganeite = w_in * np.clip(level + 0.1 * fields["akaganeite"](x, h), 0, 0.5)
    solid = np.clip(1 - cond.porosity * (1 + 0.8 * fields["pores"](x, h)), 0.5, 1.0)

    other = fields["other"](x, h) > _gauss_quantile(1 - cond.other_fraction)
    other_phase = np.where(fields["other_kind"](x, h) > 0.5, "hematite", "ferrihydrite")
    other_share = np.where(other, 0.6, 0.0)
    shares = {"goethite": alpha, "lepidocrocite": gamma, "magnetite": magnetite}
    shares = {name: share * (1 - akaganeite) for name, share in shares.items()}
    if "akaganeite" in col:
        shares["akaganeite"] = akaganeite
    for name, share in shares.items():
        comp[rust, col[name]] = (solid * (1 - other_share) * share)[rust]
    for name in ("ferrihydrite", "hematite"):
        sel = rust & (other_phase == name)
        comp[sel, col[name]] = (solid * other_share)[sel]

    # Cracks: resin-filled, from the rust surface down into the rust.
    cracked = np.zeros(n, dtype=bool)
    for crack in fields["cracks"]:
        xc = crack["x0"] + crack["wander"] * crack["path"](h)
        cracked |= (np.abs(x - xc) < crack["width"] / 2) & (h > h0 + crack["stop"] * (h2 - h0))
    comp[rust & cracked] = 0.0

    # Foreign phases: particles that take ``share`` of the volume where they are.
    for name, foreign in sim.foreign_phases.items():
        if name not in col or cond.chloride_mg_m2_day < foreign.min_chloride_mg_m2_day:
            continue
        zone_mask = rust if foreign.where == "rust" else np.abs(h - h2) < SURFACE_DUST_UM
        particle = fields["foreign"][name](x, h) > _gauss_quantile(1 - foreign.area_fraction)
        sel = zone_mask & particle
        comp[sel] *= 1 - foreign.share
        comp[sel, col[name]] = foreign.share
    comp[:, col["resin"]] = 1.0 - comp[:, : col["resin"]].sum(axis=1)
    return comp, zone


def _gauss_quantile(p: float) -> float:
    from scipy.special import ndtri

    return float(ndtri(min(max(p, 1e-9), 1 - 1e-9)))


def make_fields(
    rng: np.random.Generator, cond: ConditionConfig, sim: SimulationConfig, width_um: float
) -> dict:
    """The random fields and cracks of one sample."""
    colony = sim.substrate.colony_size_um
    cracks = []
    for _ in range(cond.cracks):
        cracks.append(
            {
                "x0": rng.uniform(0, width_um),
                "wander": rng.uniform(2.0, 6.0),
                "path": RandomField(rng, 15.0, dims=1),
                "width": rng.uniform(1.5, 3.5),
                "stop": rng.uniform(0.0, 0.6),
            }
        )
    return {
        "surface": RandomField(rng, 10.0, dims=1),
        "inner": RandomField(rng, 20.0, dims=1),
        "top": RandomField(rng, 25.0, dims=1),
        "pearlite": RandomField(rng, colony),
        "austenite": RandomField(rng, colony / 2),
        "alpha_in": RandomField(rng, 8.0),
        "alpha_out": RandomField(rng, 8.0),
        "magnetite": RandomField(rng, 6.0),
        "pores": RandomField(rng, 3.0),
        "other": RandomField(rng, 4.0),
        "other_kind": RandomField(rng, 30.0),
        "cracks": cracks,
    }


def simulate_specimen(
    grid: tuple[int, int],
    cond: ConditionConfig,
    sim: SimulationConfig,
    phases: PhasesConfig,
    fe_per_a3: dict[str, float],
    rng: np.random.Generator,
    *,
    beam_size_um: tuple[float, float],
) -> SpecimenMap:
    """Phase fractions and grain statistics at every point of a ``grid`` (rows, cols)."""
    ny, nx = grid
    sx, sy = sim.scan.step_um
    names = tuple(phases.phases)
    coarse = tuple(n for n, p in phases.phases.items() if p.grains == "coarse")
    for required in ("ferrite", "austenite", "cementite", "goethite", "lepidocrocite"):
        if required not in names:
            raise ValueError(f"phases.yaml: the specimen model needs phase {required!r}")
    rows, cols = np.divmod(np.arange(ny * nx), nx)
    x = cols * sx
    y = rows * sy
    top = cond.rust_thickness_um + sim.scan.resin_height_um
    h = top - y
    fields = make_fields(rng, cond, sim, nx * sx)
    # their own streams: these phases leave every other draw as it was
    foreign_rng, akaganeite_rng = rng.spawn(2)
    fields["foreign"] = {name: RandomField(foreign_rng, PARTICLE_UM) for name in sim.foreign_phases}
    fields["akaganeite"] = RandomField(akaganeite_rng, 6.0)

    u = (np.arange(FOOTPRINT_SAMPLES) + 0.5) / FOOTPRINT_SAMPLES - 0.5
    du, dv = np.meshgrid(u * beam_size_um[0], u * beam_size_um[1])
    xs = (x[:, None] + du.ravel()[None, :]).ravel()
    hs = (h[:, None] - dv.ravel()[None, :]).ravel()
    comp, _ = _composition(xs, hs, cond, sim, names, fields)
    fractions = comp.reshape(x.size, FOOTPRINT_SAMPLES**2, -1).mean(axis=1)
    _, zone = _composition(x.astype(float), h.astype(float), cond, sim, names, fields)

    fe_ref = fe_per_a3["ferrite"]
    fe_signal = fractions[:, : len(names)] @ np.array([fe_per_a3[n] / fe_ref for n in names])
    spots = np.zeros((x.size, len(coarse)), dtype=np.int32)
    for k, name in enumerate(coarse):
        lam = phases.phases[name].spots_per_point * fractions[:, names.index(name)]
        spots[:, k] = rng.poisson(lam)
    texture_r = np.ones((x.size, len(names)))
    for i, name in enumerate(names):
        if phases.phases[name].texture_axis_hkl is not None:
            texture_r[:, i] = np.exp(rng.normal(0.0, TEXTURE_LOG_SIGMA, size=x.size))
    return SpecimenMap(
        phase_names=names,
        coarse_names=coarse,
        x_um=x.astype(float),
        y_um=y.astype(float),
        height_um=h.astype(float),
        fractions=fractions,
        spots=spots,
        fe_signal=fe_signal,
        zone=zone,
        texture_r=texture_r,
    )
