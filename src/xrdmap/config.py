"""Configuration: YAML files in ``conf/`` validated by pydantic models, in one place.

A bad value raises :class:`ConfigError` whose message is one line naming the file and
the field, e.g. ``conf/instrument.yaml: distance_mm: Input should be greater than 0``.
"""

from __future__ import annotations

import math
from difflib import get_close_matches
from pathlib import Path
from typing import Annotated, Literal, TypeVar, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from xrdmap.classes import CLASS_NAMES
from xrdmap.errors import ConfigError

#: Committed defaults; the project is installed in editable mode next to them.
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"

#: keV * Angstrom: wavelength = HC_KEV_A / energy.
HC_KEV_A = 12.398419843320026


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Positive = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


class InstrumentConfig(_Model):
    """Beamline geometry and detector settings."""

    energy_kev: Positive = Field(description="Photon energy, keV")
    detector: str = Field(description="pyFAI detector name, e.g. Pilatus100k")
    distance_mm: Positive = Field(description="Sample to detector distance, mm")
    detector_tth_deg: float = Field(ge=0, lt=90, description="2theta of the detector centre")
    polarization_factor: float = Field(ge=-1, le=1, description="pyFAI polarization factor")
    exposure_time_s: Positive
    count_cutoff: int = Field(gt=0, description="Counter overflow value")
    threshold_ev: Positive
    beam_size_um: tuple[Positive, Positive]

    @property
    def wavelength_a(self) -> float:
        """Wavelength in Angstrom."""
        return HC_KEV_A / self.energy_kev


class PhaseConfig(_Model):
    """One crystalline phase of the simulated specimens.

    ``label``: the class the phase belongs to; ``None`` only for the simulator's
    foreign phases (:class:`ForeignPhaseConfig`), which no class covers.
    """

    cif: str
    label: str | None
    crystallite_size_nm: Positive
    grains: Literal["powder", "coarse"]
    spots_per_point: Positive | None = None
    texture_axis_hkl: tuple[int, int, int] | None = None

    @model_validator(mode="after")
    def _check(self) -> PhaseConfig:
        if self.label is not None and self.label not in CLASS_NAMES:
            raise ValueError(f"label {self.label!r} is not one of {', '.join(CLASS_NAMES)}")
        if self.grains == "coarse" and self.spots_per_point is None:
            raise ValueError("coarse grains need spots_per_point")
        return self


class PhasesConfig(_Model):
    """``phases.yaml``: every phase the classes are made of, by name."""

    phases: dict[str, PhaseConfig]

    def with_foreign(self, foreign: dict[str, ForeignPhaseConfig]) -> PhasesConfig:
        """These phases and the simulator's foreign ones (no class), in that order."""
        return PhasesConfig(
            phases={**self.phases, **{name: f.as_phase() for name, f in foreign.items()}}
        )


class ForeignPhaseConfig(_Model):
    """A phase no classifier knows that the simulator puts in some specimens, with
    truth, so that the phase fit's unexplained-intensity score is measured.

    ``where``: ``surface`` (dust trapped on the rust surface under the resin: within
    :data:`xrdmap.simulate.specimen.SURFACE_DUST_UM` of it) or ``rust`` (inside the rust
    layers); only in conditions with at least ``min_chloride_mg_m2_day``. Particles
    cover ``area_fraction`` of that zone and fill ``share`` of the volume there.
    """

    cif: str
    crystallite_size_nm: Positive
    where: Literal["surface", "rust"]
    min_chloride_mg_m2_day: float = Field(default=0.0, ge=0)
    area_fraction: Fraction
    share: Fraction

    def as_phase(self) -> PhaseConfig:
        return PhaseConfig(
            cif=self.cif, label=None, crystallite_size_nm=self.crystallite_size_nm, grains="powder"
        )


class ScanConfig(_Model):
    """Scan steps of the simulated maps."""

    step_um: tuple[Positive, Positive]
    steel_depth_um: Positive
    resin_height_um: Positive
    dead_time_s: float = Field(ge=0)
    start_time: str


class IntensityConfig(_Model):
    """Count levels of the simulated frames."""

    diffraction_counts: Positive
    fluorescence_counts: float = Field(ge=0)
    resin_hump_counts: float = Field(ge=0)
    air_counts: float = Field(ge=0)
    spot_counts_median: Positive
    spot_counts_log_sigma: float = Field(ge=0)
    spot_chi_fwhm_deg: Positive


class ResolutionConfig(_Model):
    """Caglioti instrument function: FWHM^2 = U tan^2(theta) + V tan(theta) + W, deg^2."""

    U: float
    V: float
    W: Positive

    def fwhm_deg(self, tth_deg: float) -> float:
        t = math.tan(math.radians(tth_deg) / 2)
        return math.sqrt(max(self.U * t * t + self.V * t + self.W, 1e-8))


class DetectorDefectsConfig(_Model):
    """Dead, hot and flickering pixels of the simulated detector."""

    serial_seed: int = Field(ge=0)
    dead_pixels: int = Field(ge=0)
    hot_pixels: int = Field(ge=0)
    flickering_hot_pixels: int = Field(ge=0)
    flicker_probability: Fraction


class SubstrateConfig(_Model):
    """The simulated steel: pearlite, retained austenite."""

    pearlite_area_fraction: Fraction
    cementite_in_pearlite: Fraction
    austenite_area_fraction: Fraction
    colony_size_um: Positive


class LabelRulesConfig(_Model):
    """When the simulator's truth calls a phase present."""

    min_peak_to_background: Positive
    steel_min_fraction: Fraction
    resin_min_fraction: Fraction


class ConditionConfig(_Model):
    """One atmospheric-corrosion condition and the rust it produces."""

    environment: Literal["rural", "urban", "industrial", "coastal", "marine"]
    exposure_years: Positive
    chloride_mg_m2_day: float = Field(ge=0)
    rust_thickness_um: Positive
    inner_fraction: Fraction
    alpha_gamma_ratio: Positive
    magnetite_fraction: Fraction
    other_fraction: Fraction
    cracks: int = Field(ge=0)
    roughness_um: float = Field(ge=0)
    porosity: Fraction


class SampleSpec(_Model):
    """One simulated sample: name, corrosion condition, scan grid (rows, cols)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    condition: str
    grid: tuple[Annotated[int, Field(gt=0)], Annotated[int, Field(gt=0)]]

    @property
    def n_points(self) -> int:
        return self.grid[0] * self.grid[1]


class PresetConfig(_Model):
    """A named list of simulated samples (``demo``, ``full``)."""

    samples: list[SampleSpec] = Field(min_length=1)


class SimulationConfig(_Model):
    """``simulation.yaml``: everything the beamtime simulator draws from."""

    scan: ScanConfig
    intensity: IntensityConfig
    resolution: ResolutionConfig
    detector_defects: DetectorDefectsConfig
    substrate: SubstrateConfig
    labels: LabelRulesConfig
    conditions: dict[str, ConditionConfig]
    presets: dict[str, PresetConfig]
    foreign_phases: dict[str, ForeignPhaseConfig] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> SimulationConfig:
        for preset_name, preset in self.presets.items():
            names = [s.name for s in preset.samples]
            if len(set(names)) != len(names):
                raise ValueError(f"presets.{preset_name}: sample names must be unique")
            for i, sample in enumerate(preset.samples):
                if sample.condition not in self.conditions:
                    raise ValueError(
                        f"presets.{preset_name}.samples.{i}.condition: "
                        f"unknown condition {sample.condition!r}"
                    )
        return self


class IntegrationConfig(_Model):
    """pyFAI azimuthal integration settings."""

    npt: int = Field(ge=10, le=10000, description="Number of 2theta bins")
    unit: Literal["2th_deg"] = "2th_deg"
    pixel_splitting: Literal["no", "bbox", "full"] = "bbox"
    correct_solid_angle: bool = True
    polarization_factor: float | None = Field(ge=-1, le=1)
    error_model: Literal["poisson"] = "poisson"
    batch_frames: int = Field(ge=1, le=4096)
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        description="auto: a CUDA GPU where CuPy finds one, the CPU where there is none or "
        "it fails; cpu; cuda: the GPU or an error",
    )


class CompressionConfig(_Model):
    """Blosc codec of every Zarr array."""

    cname: Literal["lz4", "lz4hc", "zstd", "zlib", "blosclz"]
    clevel: int = Field(ge=0, le=9)
    shuffle: Literal["noshuffle", "shuffle", "bitshuffle"]


class JobqueueConfig(_Model):
    """A batch-system cluster through dask-jobqueue (one Dask worker per job)."""

    system: Literal["slurm", "pbs", "sge", "lsf"] = "slurm"
    queue: str | None = None  #: partition / queue
    account: str | None = None
    cores: int = Field(8, ge=1)  #: per job
    memory: str = "32GB"  #: per job
    processes: int = Field(8, ge=1)  #: Dask worker processes per job (1 thread each)
    walltime: str = "02:00:00"
    max_jobs: int = Field(4, ge=1)  #: adaptive scaling between 0 and this many jobs
    job_extra_directives: list[str] = []


class DaskConfig(_Model):
    """Where chunks run: a local cluster (default), an existing scheduler (``address``),
    or a batch-system cluster (``jobqueue``). At most one of the last two."""

    address: str | None = Field(None, description="Existing scheduler; None = local cluster")
    n_workers: int | None = Field(None, ge=1)
    threads_per_worker: int = Field(1, ge=1)
    jobqueue: JobqueueConfig | None = None
    in_process_below_mb: float = Field(
        512,
        ge=0,
        description="Flows that read less than this (process: the frames as int32 counts; "
        "predict: the patterns, float32 MB) run their tasks on threads in their own "
        "process when no scheduler or batch cluster is named; 0 = always a Dask cluster",
    )
    #: numbers as written unquoted in YAML (MALLOC_TRIM_THRESHOLD_: 268435456) are
    #: taken as the text the environment holds
    worker_environ: dict[str, Annotated[str, Field(coerce_numbers_to_str=True)]] = Field(
        {},
        description="Environment of each local or batch worker process, set before it "
        "starts (Dask's distributed.nanny.pre-spawn-environ), e.g. glibc's allocator "
        "thresholds",
    )

    worker_profiler: bool = Field(
        False,
        description="Dask's statistical profiler in each local or batch worker (the "
        "dashboard's Profile page): it samples every thread's stack 100 times a second on "
        "the worker's event loop, taking the GIL from the task (ingest 11% slower, full "
        "preset on 2 cores)",
    )

    @model_validator(mode="after")
    def _check(self) -> DaskConfig:
        if self.address and self.jobqueue:
            raise ValueError("give either address or jobqueue, not both")
        return self


class ProcessConfig(_Model):
    """How `xrdmap process` turns a beamtime into a Zarr store."""

    chunk_frames: int = Field(ge=1, description="Frames per task and per patterns chunk")
    frames_chunk_frames: int = Field(ge=1, description="Zarr chunk of raw frames along n")
    integration: IntegrationConfig
    compression: CompressionConfig
    dask: DaskConfig

    @model_validator(mode="after")
    def _check(self) -> ProcessConfig:
        if self.chunk_frames % self.frames_chunk_frames:
            raise ValueError(
                f"frames_chunk_frames ({self.frames_chunk_frames}) must divide "
                f"chunk_frames ({self.chunk_frames}) so that a task writes whole chunks"
            )
        return self


class TrainConfig(_Model):
    """Training of the dense classifier and where its versions go."""

    registry_dir: str
    split: tuple[
        Annotated[int, Field(gt=0)], Annotated[int, Field(gt=0)], Annotated[int, Field(ge=0)]
    ]
    seed: int = 0
    hidden: tuple[Annotated[int, Field(gt=0)], ...] = (256, 128)
    dropout: float = Field(0.2, ge=0, lt=1)
    l2: float = Field(1e-4, ge=0)
    learning_rate: Positive = 1e-3
    batch_size: int = Field(32, gt=0)
    max_epochs: int = Field(400, gt=0)
    patience: int = Field(40, gt=0)
    augment_copies: int = Field(20, ge=0)
    max_pos_weight: float = Field(10.0, ge=1)
    pretrain_patterns: int = Field(20000, ge=0)
    pretrain_backgrounds: int = Field(2000, gt=0)
    pretrain_epochs: int = Field(30, gt=0)
    pretrain_batch_size: int = Field(256, gt=0)
    finetune_learning_rate: Positive = 1e-4
    finetune_epochs: int = Field(30, gt=0)
    rehearsal_patterns: int = Field(5000, ge=0)
    ensemble_members: int = Field(5, gt=0)


M = TypeVar("M", bound=BaseModel)


def _models_in(annotation: object) -> tuple[list[type[BaseModel]], bool]:
    """The models a field's type holds (itself, optional, one of a union, in a list or a
    mapping), and whether they are inside a list or a mapping (an error's location then
    goes on with an index or a key before the model's own field)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation], False
    models: list[type[BaseModel]] = []
    contained = False
    for arg in get_args(annotation):
        found, inside = _models_in(arg)
        models += found
        contained |= inside or (bool(found) and get_origin(annotation) in (list, tuple, dict))
    return models, contained


def _tagged(model: type[BaseModel], tag: object) -> bool:
    """Whether one of ``model``'s fields is the literal ``tag`` (a union's discriminator)."""
    return any(tag in get_args(f.annotation) for f in model.model_fields.values())


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """The field names of the model found at ``loc`` inside ``model``; none where
    ``loc`` leads to no model."""
    keys = list(loc)
    while keys:
        field = model.model_fields.get(str(keys.pop(0)))
        models, contained = _models_in(field.annotation) if field else ([], False)
        if contained and keys:
            keys.pop(0)  # the index or key into a list or mapping of models
        if len(models) > 1 and keys:  # a union: its member is named by its tag
            models = [m for m in models if _tagged(m, keys[0])]
            keys = keys[1:] if models else keys
        if not models:
            return []
        model = models[0]
    return list(model.model_fields)


def _format_validation_error(path: Path, err: ValidationError, model: type[BaseModel]) -> str:
    """The first error, a misspelt field before all (a typo also leaves the field it
    meant missing: that is the second error, not the news), with the field it may mean."""
    errors = sorted(err.errors(), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    field = ".".join(str(p) for p in first["loc"]) or "(top level)"
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        close = get_close_matches(str(first["loc"][-1]), _fields_at(model, first["loc"][:-1]), 1)
        message = "not a setting" + (f" (did you mean {close[0]}?)" if close else "")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{path}: {field}: {message}{more}"


def load_yaml_model(path: str | Path, model: type[M]) -> M:
    """Read ``path`` and validate it as ``model``; errors name the file and the field."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where}: not valid YAML").with_traceback(None) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of fields at the top level")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(path, exc, model)) from None


def load_instrument(path: str | Path | None = None) -> InstrumentConfig:
    """``instrument.yaml`` (default: the project's ``conf/``), validated."""
    return load_yaml_model(path or CONF_DIR / "instrument.yaml", InstrumentConfig)


def load_phases(path: str | Path | None = None) -> PhasesConfig:
    """``phases.yaml`` (default: the project's ``conf/``), validated."""
    path = Path(path or CONF_DIR / "phases.yaml")
    phases = load_yaml_model(path, PhasesConfig)
    for name, phase in phases.phases.items():
        if phase.label is None:
            raise ConfigError(f"{path}: phases.{name}.label: every phase belongs to a class")
    return phases


def load_simulation(path: str | Path | None = None) -> SimulationConfig:
    """``simulation.yaml`` (default: the project's ``conf/``), validated."""
    return load_yaml_model(path or CONF_DIR / "simulation.yaml", SimulationConfig)


def load_process(path: str | Path | None = None) -> ProcessConfig:
    """``process.yaml`` (default: the project's ``conf/``), validated."""
    return load_yaml_model(path or CONF_DIR / "process.yaml", ProcessConfig)


def load_train(path: str | Path | None = None) -> TrainConfig:
    """``train.yaml`` (default: the project's ``conf/``), validated."""
    return load_yaml_model(path or CONF_DIR / "train.yaml", TrainConfig)


def conf_file(conf_dir: str | Path | None, name: str) -> Path:
    """``name`` (e.g. ``train.yaml``) in ``conf_dir``, default the project's ``conf/``."""
    return Path(conf_dir or CONF_DIR) / name


def registry_dir(conf_dir: str | Path | None = None, override: str | None = None) -> str:
    """The model registry folder: ``override`` if given, else ``train.yaml``'s
    ``registry_dir`` (the one place its default is written)."""
    return override or load_train(conf_file(conf_dir, "train.yaml")).registry_dir
