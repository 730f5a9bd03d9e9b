"""Configuration: defaults validate; a bad value is one line naming file and field."""

from pathlib import Path

import pytest
import yaml

from xrdmap.config import (
    CONF_DIR,
    ConfigError,
    load_instrument,
    load_phases,
    load_process,
    load_simulation,
)


def test_defaults_load():
    inst = load_instrument()
    assert inst.wavelength_a == pytest.approx(1.2398, abs=1e-4)
    assert inst.detector == "Pilatus100k"
    sim = load_simulation()
    assert len(sim.conditions) == 15
    assert sum(s.n_points for s in sim.presets["full"].samples) == 114_198
    assert len(sim.presets["full"].samples) == 15
    assert len(sim.presets["demo"].samples) == 2
    assert set(load_phases().phases) >= {"magnetite", "goethite", "lepidocrocite", "ferrite"}


def _write_modified(tmp_path: Path, name: str, edit) -> Path:
    data = yaml.safe_load((CONF_DIR / name).read_text())
    edit(data)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_bad_value_names_file_and_field(tmp_path):
    path = _write_modified(tmp_path, "instrument.yaml", lambda d: d.update(distance_mm=-5))
    with pytest.raises(ConfigError) as err:
        load_instrument(path)
    msg = str(err.value)
    assert "\n" not in msg
    assert str(path) in msg and "distance_mm" in msg and "greater than 0" in msg


def test_unknown_field_is_refused(tmp_path):
    path = _write_modified(tmp_path, "instrument.yaml", lambda d: d.update(distnce_mm=150))
    with pytest.raises(ConfigError, match=r"instrument.yaml: distnce_mm: not a setting \(did"):
        load_instrument(path)


def test_a_misspelt_setting_is_named_before_the_one_it_leaves_missing(tmp_path):
    """A typo makes two errors: the unknown name and the setting it meant, now missing.
    The message names the typo and what it may mean, in nested sections too."""

    path = _write_modified(
        tmp_path, "process.yaml", lambda d: d.update(chunk_frame=d.pop("chunk_frames"))
    )
    with pytest.raises(ConfigError) as err:
        load_process(path)
    assert str(err.value) == (
        f"{path}: chunk_frame: not a setting (did you mean chunk_frames?) (and 1 more)"
    )
    path = _write_modified(tmp_path, "process.yaml", lambda d: d["dask"].update(colour="red"))
    with pytest.raises(ConfigError, match=r"process.yaml: dask.colour: not a setting$"):
        load_process(path)
    path = _write_modified(tmp_path, "process.yaml", lambda d: d["dask"].update(n_worker=2))
    with pytest.raises(ConfigError, match=r"dask.n_worker: not a setting \(did you mean n_wor"):
        load_process(path)


def test_nested_field_path(tmp_path):
    def edit(d):
        d["presets"]["demo"]["samples"][1]["grid"] = [10, 0]

    path = _write_modified(tmp_path, "simulation.yaml", edit)
    with pytest.raises(ConfigError, match=r"presets\.demo\.samples\.1\.grid\.1: "):
        load_simulation(path)


def test_unknown_condition_is_named(tmp_path):
    def edit(d):
        d["presets"]["demo"]["samples"][0]["condition"] = "C99"

    path = _write_modified(tmp_path, "simulation.yaml", edit)
    with pytest.raises(ConfigError, match=r"presets.demo.samples.0.condition: unknown condition"):
        load_simulation(path)


def test_unknown_class_label(tmp_path):
    path = _write_modified(
        tmp_path, "phases.yaml", lambda d: d["phases"]["goethite"].update(label="rust")
    )
    with pytest.raises(ConfigError, match=r"phases.goethite: .*label 'rust' is not one of"):
        load_phases(path)


def test_every_phase_of_phases_yaml_belongs_to_a_class(tmp_path):
    path = _write_modified(
        tmp_path, "phases.yaml", lambda d: d["phases"]["goethite"].update(label=None)
    )
    with pytest.raises(ConfigError, match=r"phases.goethite.label: every phase belongs to a class"):
        load_phases(path)


def test_invalid_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "instrument.yaml"
    bad.write_text("energy_kev: [10\n")
    with pytest.raises(ConfigError, match=r"instrument.yaml: line \d+: not valid YAML"):
        load_instrument(bad)
    with pytest.raises(ConfigError, match=r"nope.yaml: cannot read"):
        load_instrument(tmp_path / "nope.yaml")


def test_worker_environment_takes_numbers_and_refuses_what_is_not_a_value(tmp_path):
    def unquoted(d):
        d["dask"]["worker_environ"] = {"MALLOC_TRIM_THRESHOLD_": 268435456}

    cfg = load_process(_write_modified(tmp_path, "process.yaml", unquoted))
    assert cfg.dask.worker_environ == {"MALLOC_TRIM_THRESHOLD_": "268435456"}

    def listed(d):
        d["dask"]["worker_environ"] = {"OMP_NUM_THREADS": [1, 2]}

    path = _write_modified(tmp_path, "process.yaml", listed)
    with pytest.raises(ConfigError, match=r"dask\.worker_environ\.OMP_NUM_THREADS: "):
        load_process(path)
