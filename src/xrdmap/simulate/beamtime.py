"""Simulate a whole beamtime: every sample of a preset, frames in parallel processes.

Layout written under ``OUT_DIR`` (the ground truth sits beside the beamtime folder,
never inside it)::

    OUT_DIR/beamtime/beamtime.json        instrument, samples, file format
    OUT_DIR/beamtime/geometry.poni         pyFAI geometry (written by pyFAI)
    OUT_DIR/beamtime/mask.edf              detector mask, 1 = bad pixel
    OUT_DIR/beamtime/<sample>/scan.json    grid, steps, condition, times
    OUT_DIR/beamtime/<sample>/points.csv   point, row, col, x_um, y_um, file, frame
    OUT_DIR/beamtime/<sample>/frames/<sample>_000001.cbf ...   (--layout cbf)
    OUT_DIR/beamtime/<sample>/<sample>.h5  /entry/data/data (n, 195, 487)  (--layout hdf5)

or, for the raw layouts (no beamtime.json, scan.json, points.csv: `xrdmap init` them)::

    OUT_DIR/beamtime/<sample>/<sample>_master.h5, <sample>_data_000001.h5 ... (--layout nxmx)
    OUT_DIR/beamtime/<sample>/<sample>_0001/<sample>_0001.h5,
        scan0001/pilatus_0000.h5 ...                                 (--layout bliss)
    OUT_DIR/beamtime/<sample>/<sample>_00001.tif ..., positions.csv (--layout tiff)
    OUT_DIR/beamtime/<sample>/SCAN_COMPLETE        written last for the sample
    OUT_DIR/beamtime/BEAMTIME_COMPLETE             written last for the beamtime
    OUT_DIR/truth/<sample>.csv             fractions, spots, the nine labels
    OUT_DIR/truth/README.md, truth.json    the labeling rule and provenance
    OUT_DIR/sample_sheet.csv               what the experimenters know of each sample:
                                           condition, environment, exposure, chloride

Frames are deterministic for a seed: each point draws from its own generator seeded
by ``(seed, sample index, point)``, whatever the number of worker processes.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from tqdm import tqdm

from xrdmap import __version__
from xrdmap.classes import CLASS_NAMES
from xrdmap.config import (
    CONF_DIR,
    InstrumentConfig,
    PhasesConfig,
    PresetConfig,
    SampleSpec,
    SimulationConfig,
    load_instrument,
    load_phases,
    load_simulation,
)
from xrdmap.discovery import BEAMTIME_COMPLETE, SCAN_COMPLETE
from xrdmap.errors import SimulationError
from xrdmap.phases import ReferenceLines, all_reference_lines
from xrdmap.simulate import geometry, writers
from xrdmap.simulate.frames import FrameSimulator, PointState
from xrdmap.simulate.specimen import ZONE_NAMES, SpecimenMap, simulate_specimen
from xrdmap.simulate.truth import labels_from_specimen

#: cbf, hdf5: the folder layout (beamtime.json, scan.json, points.csv) with miniCBF
#: frames or one NeXus file per sample; nxmx, bliss, tiff: only what those beamlines
#: write (frames, positions, the calibration's PONI and mask), for `xrdmap init`.
Layout = Literal["cbf", "hdf5", "nxmx", "bliss", "tiff"]
LAYOUTS: tuple[str, ...] = ("cbf", "hdf5", "nxmx", "bliss", "tiff")
#: Encoder jitter of the BLISS (fly scan) positions, as a fraction of the step.
FLY_JITTER = 0.03
#: Points per unit of parallel work.
CHUNK_POINTS = 200
#: 2theta window of the reference lines: wider than the detector's 9.7-40.6 deg.
LINES_TTH_RANGE = (5.0, 45.0)
#: A file in OUT_DIR that marks it as the simulator's, so --overwrite may remove it.
OUTPUT_MARKER = ".xrdmap-simulation"
#: Time between two samples (mounting, alignment).
SAMPLE_CHANGE_S = 900.0


@dataclass(frozen=True)
class SimulationResult:
    """Where a simulation wrote the beamtime and its truth, and how big it is."""

    beamtime_dir: Path
    truth_dir: Path
    n_samples: int
    n_points: int
    seconds: float

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.beamtime_dir.rglob("*") if p.is_file())


@dataclass(frozen=True)
class _Context:
    """Everything a worker process needs to render frames."""

    instrument: InstrumentConfig
    phases: PhasesConfig
    sim: SimulationConfig
    lines: dict[str, ReferenceLines]


@dataclass(frozen=True)
class _Chunk:
    sample_index: int
    points: np.ndarray
    fractions: np.ndarray
    spots: np.ndarray
    fe_signal: np.ndarray
    texture_r: np.ndarray
    paths: list[Path] | None  #: CBF or TIFF files the worker writes
    headers: list[str] | None  #: CBF headers


_WORKER: dict = {}


def _build_simulator(ctx: _Context) -> FrameSimulator:
    ai = geometry.build_integrator(ctx.instrument)
    defects = geometry.detector_defects(ctx.sim.detector_defects, tuple(ai.detector.shape))
    return FrameSimulator(ai, ctx.instrument, ctx.phases, ctx.sim, ctx.lines, defects)


def _init_worker(ctx: _Context, seed: int) -> None:
    _WORKER["sim"] = _build_simulator(ctx)
    _WORKER["seed"] = seed
    _WORKER["min_ratio"] = ctx.sim.labels.min_peak_to_background


def _render_chunk(chunk: _Chunk) -> tuple[_Chunk, np.ndarray | None, np.ndarray]:
    """Render a chunk; write CBF or TIFF files directly, or return the frames for HDF5.

    Also returns which powder phases are visible at each point (for the truth labels).
    """
    sim: FrameSimulator = _WORKER["sim"]
    seed: int = _WORKER["seed"]
    frames = None if chunk.paths else np.empty((len(chunk.points), *sim.maps.shape), np.int32)
    visible = np.zeros((len(chunk.points), len(sim.phase_names)), bool)
    for k, point in enumerate(chunk.points):
        rng = np.random.default_rng([seed, chunk.sample_index, int(point)])
        state = PointState(
            chunk.fractions[k], chunk.spots[k], float(chunk.fe_signal[k]), chunk.texture_r[k]
        )
        seen = sim.visible_phases(
            state.fractions, state.texture_r, state.fe_signal, _WORKER["min_ratio"]
        )
        visible[k] = [name in seen for name in sim.phase_names]
        frame = sim.render(state, rng)
        if chunk.paths is not None and chunk.headers is not None:
            writers.write_cbf(chunk.paths[k], frame, chunk.headers[k])
        elif chunk.paths is not None:
            writers.write_tiff(chunk.paths[k], frame)
        elif frames is not None:
            frames[k] = frame
    return chunk, frames, visible


#: Layouts with beamtime.json, scan.json and points.csv.
FOLDER_LAYOUTS = ("cbf", "hdf5")


def _store_frames(datasets: list, points: np.ndarray, frames: np.ndarray) -> None:
    """Rendered frames into their HDF5 file(s): one dataset per sample, or data files
    of :data:`writers.FRAMES_PER_FILE` frames (NXmx, LIMA)."""
    per_file = datasets[0].shape[0]  # every file but the last holds this many
    file_of = points // per_file
    for k in np.unique(file_of):
        mine = points[file_of == k] - k * per_file  # consecutive
        datasets[k][mine[0] : mine[-1] + 1] = frames[file_of == k]


def _close(sample: dict) -> None:
    """Close the sample's open HDF5 files."""
    for dset in sample.pop("datasets", []):
        if dset.id.valid:
            dset.file.close()
    sample.pop("h5", None)


def _prepare_output(out_dir: Path, overwrite: bool) -> tuple[Path, Path]:
    if out_dir.exists() and any(out_dir.iterdir()):
        if not overwrite:
            raise SimulationError(f"{out_dir}: exists and is not empty (use --overwrite)")
        if not (out_dir / OUTPUT_MARKER).exists():
            raise SimulationError(
                f"{out_dir}: not written by `xrdmap simulate` ({OUTPUT_MARKER} missing); "
                "refusing to overwrite it"
            )
        shutil.rmtree(out_dir)
    beamtime_dir, truth_dir = out_dir / "beamtime", out_dir / "truth"
    beamtime_dir.mkdir(parents=True)
    truth_dir.mkdir()
    (out_dir / OUTPUT_MARKER).write_text("written by xrdmap simulate\n")
    return beamtime_dir, truth_dir


def _truth_table(
    spec: SpecimenMap, labels: np.ndarray, unknown: list[str], grid: tuple[int, int]
) -> pd.DataFrame:
    rows, cols = np.divmod(np.arange(spec.x_um.size), grid[1])
    table = {
        "point": np.arange(spec.x_um.size),
        "row": rows,
        "col": cols,
        "x_um": spec.x_um,
        "y_um": spec.y_um,
        "height_um": spec.height_um.round(3),
        "zone": [ZONE_NAMES[z] for z in spec.zone],
    }
    for i, name in enumerate(spec.columns):
        table[f"frac_{name}"] = spec.fractions[:, i].round(5)
    for k, name in enumerate(spec.coarse_names):
        table[f"spots_{name}"] = spec.spots[:, k]
    table["fe_signal"] = spec.fe_signal.round(5)
    for i, name in enumerate(CLASS_NAMES):
        table[name] = labels[:, i]
    table["unknown phase"] = unknown
    return pd.DataFrame(table)


TRUTH_README = """# Ground truth of a simulated beamtime

Written by `xrdmap simulate` beside the beamtime folder; the pipeline never reads it.
One CSV per sample, one row per scan point (same `point` numbering as the beamtime's
`points.csv`).

- `frac_<phase>`: volume fraction of each phase under the beam footprint (rows sum to 1,
  `frac_resin` included); `spots_<phase>`: grains of a coarse-grained phase in
  diffraction condition on the detector; `fe_signal`: Fe fluorescence relative to pure
  ferrite; `zone`: steel / inner rust / outer rust / resin at the beam centre.
- The nine label columns (0/1) follow what an expert sees in the pattern:
  - Fe3O4, alpha-FeOOH, gamma-FeOOH, Fe3C, Other (akaganeite, ferrihydrite or hematite): the
    phase is seen: somewhere on the detector its noise-free contribution to the 1D
    pattern (texture included) rises at least {ratio:.0%} above everything else there
    (other phases, resin, air scatter, Fe fluorescence) and at least five standard
    deviations of the counting noise in a 0.1 deg bin;
  - Fe(BCC), Fe(FCC): at least one reflection of that phase on the detector;
  - Fe without peaks: steel fills >= {steel} of the beam and no Fe(BCC)/Fe(FCC)
    reflection reaches the detector;
  - resin only: resin >= {resin} of the beam and no other class present.
- `unknown phase`: the phases no model knows (dust, sea salt; `foreign_phases` in
  simulation.yaml) seen at the point by the same rule as the powder phases, joined by
  `+` (empty: none). They belong to no class: the phase fit reports them as
  unexplained lines.
"""


def _chunks(n: int, size: int) -> Iterator[np.ndarray]:
    for start in range(0, n, size):
        yield np.arange(start, min(start + size, n))


def simulate_beamtime(
    out_dir: str | Path,
    *,
    preset: str | PresetConfig = "demo",
    seed: int = 0,
    layout: Layout = "cbf",
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    conf_dir: str | Path | None = None,
    sim: SimulationConfig | None = None,
) -> SimulationResult:
    """Simulate every sample of ``preset`` into ``out_dir``; see the module docstring.

    Configuration comes from ``conf_dir`` (default: the project's ``conf/``); ``sim``
    replaces its ``simulation.yaml`` (tests use it for small presets).
    """
    t0 = time.perf_counter()
    conf_dir = Path(conf_dir) if conf_dir else CONF_DIR
    instrument = load_instrument(conf_dir / "instrument.yaml")
    sim = sim or load_simulation(conf_dir / "simulation.yaml")
    phases = load_phases(conf_dir / "phases.yaml").with_foreign(sim.foreign_phases)
    if isinstance(preset, str):
        if preset not in sim.presets:
            raise SimulationError(f"unknown preset {preset!r}; known: {', '.join(sim.presets)}")
        preset_name, preset = preset, sim.presets[preset]
    else:
        preset_name = "custom"
    if layout not in LAYOUTS:
        raise SimulationError(f"unknown layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    out_dir = Path(out_dir)
    beamtime_dir, truth_dir = _prepare_output(out_dir, overwrite)

    ai = geometry.build_integrator(instrument)
    shape = tuple(ai.detector.shape)
    geometry.write_poni(ai, beamtime_dir / "geometry.poni")
    defects = geometry.detector_defects(sim.detector_defects, shape)
    geometry.write_mask(defects.mask(shape), beamtime_dir / "mask.edf")
    fit2d = ai.getFit2D()
    beam_xy = (fit2d["centerX"], fit2d["centerY"])
    n_excluded = int(defects.dead.size + defects.hot.size)
    lines = all_reference_lines(
        phases,
        wavelength_a=instrument.wavelength_a,
        tth_range_deg=LINES_TTH_RANGE,
        phase_dir=conf_dir / "phases",
    )
    fe_per_a3 = {name: ref.fe_per_a3 for name, ref in lines.items()}

    start = datetime.fromisoformat(sim.scan.start_time)
    per_point = timedelta(seconds=instrument.exposure_time_s + sim.scan.dead_time_s)
    description = {
        "beamtime_id": f"{preset_name}-{seed}",
        "start_time": start.isoformat(),
        "instrument": {
            "energy_kev": instrument.energy_kev,
            "wavelength_a": instrument.wavelength_a,
            "detector": instrument.detector,
            "distance_mm": instrument.distance_mm,
            "detector_tth_deg": instrument.detector_tth_deg,
            "beam_size_um": list(instrument.beam_size_um),
            "exposure_time_s": instrument.exposure_time_s,
            "count_cutoff": instrument.count_cutoff,
        },
        "geometry": "geometry.poni",
        "mask": "mask.edf",
        "frame_format": layout,
        "samples": [s.name for s in preset.samples],
    }
    if layout in FOLDER_LAYOUTS:
        writers.write_json(beamtime_dir / "beamtime.json", description)
    pd.DataFrame(
        [
            {
                "sample": s.name,
                "condition": s.condition,
                "environment": sim.conditions[s.condition].environment,
                "exposure_years": sim.conditions[s.condition].exposure_years,
                "chloride_mg_m2_day": sim.conditions[s.condition].chloride_mg_m2_day,
            }
            for s in preset.samples
        ]
    ).to_csv(out_dir / "sample_sheet.csv", index=False)

    samples: list[dict] = []
    t_sample = start
    for index, spec_cfg in enumerate(preset.samples):
        samples.append(
            _prepare_sample(
                index,
                spec_cfg,
                beamtime_dir,
                truth_dir,
                t_sample,
                per_point,
                instrument=instrument,
                phases=phases,
                sim=sim,
                fe_per_a3=fe_per_a3,
                seed=seed,
                layout=layout,
                shape=shape,
                beam_xy=beam_xy,
                n_excluded=n_excluded,
            )
        )
        t_sample += per_point * spec_cfg.n_points + timedelta(seconds=SAMPLE_CHANGE_S)

    n_total = sum(s["spec_cfg"].n_points for s in samples)
    ctx = _Context(instrument, phases, sim, lines)
    workers = workers or os.cpu_count() or 1
    work = [
        _Chunk(
            sample_index=s["index"],
            points=pts,
            fractions=s["specimen"].fractions[pts],
            spots=s["specimen"].spots[pts],
            fe_signal=s["specimen"].fe_signal[pts],
            texture_r=s["specimen"].texture_r[pts],
            paths=[s["paths"][p] for p in pts] if "paths" in s else None,
            headers=[s["headers"][p] for p in pts] if "headers" in s else None,
        )
        for s in samples
        for pts in _chunks(s["spec_cfg"].n_points, CHUNK_POINTS)
    ]
    remaining = {s["index"]: s["spec_cfg"].n_points for s in samples}
    bar = tqdm(total=n_total, unit="frame", desc="simulate", disable=not progress)
    try:
        # spawn, not fork: pyFAI's OpenMP runtime does not survive a fork of a process
        # that already used it (the children hang).
        with ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(ctx, seed),
        ) as pool:
            futures = {pool.submit(_render_chunk, c) for c in work}
            for fut in as_completed(futures):
                chunk, frames, visible = fut.result()
                futures.discard(fut)  # its frames are written below: let them go
                sample = samples[chunk.sample_index]
                sample["visible"][chunk.points] = visible
                if frames is not None:
                    _store_frames(sample["datasets"], chunk.points, frames)
                remaining[chunk.sample_index] -= len(chunk.points)
                bar.update(len(chunk.points))
                if remaining[chunk.sample_index] == 0:
                    _finish_sample(sample, phases, sim, truth_dir)
    finally:
        bar.close()
        for s in samples:
            _close(s)
    (beamtime_dir / BEAMTIME_COMPLETE).write_text(f"{len(samples)} samples, {n_total} frames\n")
    return SimulationResult(
        beamtime_dir, truth_dir, len(samples), n_total, time.perf_counter() - t0
    )


def _prepare_sample(
    index: int,
    spec_cfg: SampleSpec,
    beamtime_dir: Path,
    truth_dir: Path,
    t_start: datetime,
    per_point: timedelta,
    *,
    instrument: InstrumentConfig,
    phases: PhasesConfig,
    sim: SimulationConfig,
    fe_per_a3: dict[str, float],
    seed: int,
    layout: Layout,
    shape: tuple[int, int],
    beam_xy: tuple[float, float],
    n_excluded: int,
) -> dict:
    """Specimen and scan metadata of one sample; files opened for frames."""
    cond = sim.conditions[spec_cfg.condition]
    rng = np.random.default_rng([seed, index, 0])
    specimen = simulate_specimen(
        spec_cfg.grid, cond, sim, phases, fe_per_a3, rng, beam_size_um=instrument.beam_size_um
    )
    if index == 0:
        r = sim.labels
        (truth_dir / "README.md").write_text(
            TRUTH_README.format(
                ratio=r.min_peak_to_background,
                steel=r.steel_min_fraction,
                resin=r.resin_min_fraction,
            )
        )
        writers.write_json(
            truth_dir / "truth.json",
            {"seed": seed, "xrdmap_version": __version__, "label_rules": r.model_dump()},
        )

    sample_dir = beamtime_dir / spec_cfg.name
    sample_dir.mkdir()
    n = spec_cfg.n_points
    times = [t_start + per_point * i for i in range(n)]
    rows, cols = np.divmod(np.arange(n), spec_cfg.grid[1])
    out: dict = {
        "index": index,
        "spec_cfg": spec_cfg,
        "specimen": specimen,
        "dir": sample_dir,
        "visible": np.zeros((n, len(specimen.phase_names)), bool),
    }
    xy_mm = np.column_stack([specimen.x_um, specimen.y_um]) / 1000
    if layout == "cbf":
        (sample_dir / "frames").mkdir()
        files = [f"frames/{spec_cfg.name}_{i + 1:06d}.cbf" for i in range(n)]
        out["paths"] = [sample_dir / f for f in files]
        out["headers"] = [
            writers.cbf_header(instrument, timestamp=t, beam_xy_px=beam_xy, n_excluded=n_excluded)
            for t in times
        ]
        frame_index = [0] * n
    elif layout == "tiff":
        out["paths"] = [sample_dir / f"{spec_cfg.name}_{i + 1:05d}.tif" for i in range(n)]
        pd.DataFrame(
            {
                "file": [p.name for p in out["paths"]],
                "samx_um": specimen.x_um,
                "samy_um": specimen.y_um,
            }
        ).to_csv(sample_dir / "positions.csv", index=False)
    elif layout == "nxmx":
        out["datasets"] = writers.create_nxmx(
            sample_dir,
            spec_cfg.name,
            n,
            shape,
            instrument,
            beam_xy_px=beam_xy,
            positions_mm=xy_mm,
            start_time=t_start,
        )
    elif layout == "bliss":
        step_mm = np.asarray(sim.scan.step_um) / 1000
        jitter = np.random.default_rng([seed, index, 1]).normal(0, FLY_JITTER, (n, 2)) * step_mm
        out["datasets"] = writers.create_bliss_scan(
            sample_dir, spec_cfg.name, n, shape, positions_mm=xy_mm + jitter, start_time=t_start
        )
    else:
        files = [f"{spec_cfg.name}.h5"] * n
        frame_index = list(range(n))
        h5 = writers.create_nexus(
            sample_dir / files[0], n, shape, instrument, sample=spec_cfg.name, start_time=t_start
        )
        out["h5"], out["datasets"] = h5, [h5["/entry/data/data"]]
    if layout not in FOLDER_LAYOUTS:
        return out
    writers.write_points_csv(
        sample_dir / "points.csv",
        [
            {
                "point": i,
                "row": int(rows[i]),
                "col": int(cols[i]),
                "x_um": float(specimen.x_um[i]),
                "y_um": float(specimen.y_um[i]),
                "file": files[i],
                "frame": frame_index[i],
                "time": times[i].isoformat(),
            }
            for i in range(n)
        ],
    )
    out["scan"] = {
        "sample": spec_cfg.name,
        "condition": {
            "id": spec_cfg.condition,
            "environment": cond.environment,
            "exposure_years": cond.exposure_years,
            "chloride_mg_m2_day": cond.chloride_mg_m2_day,
        },
        "grid": {"rows": spec_cfg.grid[0], "cols": spec_cfg.grid[1]},
        "step_um": {"x": sim.scan.step_um[0], "y": sim.scan.step_um[1]},
        "scan_order": "row-major: row 0 at the top (resin side), y_um grows towards the steel",
        "motors": {"x": "samx", "y": "samy", "units": "um"},
        "n_points": n,
        "exposure_time_s": instrument.exposure_time_s,
        "frame_format": layout,
        "frame_shape": list(shape),
        "points_file": "points.csv",
        "start_time": times[0].isoformat(),
        "end_time": (times[-1] + per_point).isoformat(),
    }
    return out


def _finish_sample(
    sample: dict, phases: PhasesConfig, sim: SimulationConfig, truth_dir: Path
) -> None:
    """Ground truth, scan metadata, then the completion marker, last."""
    spec_cfg, specimen = sample["spec_cfg"], sample["specimen"]
    labels = labels_from_specimen(specimen, sample["visible"], phases, sim.labels)
    foreign = [i for i, name in enumerate(specimen.phase_names) if name in sim.foreign_phases]
    unknown = [
        "+".join(specimen.phase_names[i] for i in foreign if seen[i]) for seen in sample["visible"]
    ]
    _truth_table(specimen, labels, unknown, spec_cfg.grid).to_csv(
        truth_dir / f"{spec_cfg.name}.csv", index=False
    )
    _close(sample)
    if "scan" not in sample:  # a raw layout: no folder-layout metadata
        return
    writers.write_json(sample["dir"] / "scan.json", sample["scan"])
    (sample["dir"] / SCAN_COMPLETE).write_text(
        f"{sample['scan']['n_points']} frames, end {sample['scan']['end_time']}\n"
    )
