"""Azimuthal integration of whole chunks of frames with pyFAI's own sparse matrix.

pyFAI's ``integrate1d`` (CSR engine) computes, for each 2theta bin ``b``::

    sum_signal[b]        = sum_j c[b, j] * x[j]
    sum_normalization[b] = sum_j c[b, j] * solid_angle[j] * polarization[j]
    sum_variance[b]      = sum_j c[b, j]**2 * max(x[j], 1)        (Poisson model)
    intensity = sum_signal / sum_normalization
    sigma     = sqrt(sum_variance) / sum_normalization

with ``c`` the pixel-splitting coefficients of its CSR matrix (masked pixels have none).
:class:`BatchIntegrator` takes that very matrix from pyFAI and applies it to a block of
frames at once: one sparse x dense product per block instead of one call per frame.
Pixels that are negative (PILATUS bad-pixel flag) or at the count cutoff (overflow)
are dropped frame by frame, exactly as a per-frame mask would drop them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import fabio
import numpy as np
import scipy.sparse as sp
from pyFAI.detectors import Detector, detector_factory
from pyFAI.integrator.azimuthal import AzimuthalIntegrator
from pyFAI.io.ponifile import PoniFile

from xrdmap.config import IntegrationConfig
from xrdmap.errors import GeometryError, first_line
from xrdmap.hashing import sha256_file

if TYPE_CHECKING:
    from xrdmap.integrate_gpu import CudaIntegrator, GpuOrCpuIntegrator

#: The PONI lies on the detector plane; metres beyond this are a wrong value, not a
#: detector (the largest area detectors are about 0.4 m across).
MAX_PONI_M = 10.0
#: Fields every PONI version (1, 2, 2.1) states; ``Detector`` may be absent.
PONI_FIELDS = ("Distance", "Poni1", "Poni2", "Rot1", "Rot2", "Rot3", "Wavelength")


def load_geometry(
    poni_path: str | Path,
    *,
    shape: tuple[int, int] | None = None,
    pixel_size_m: tuple[float, float] | None = None,
    orientation: int | None = None,
) -> AzimuthalIntegrator:
    """Load a PONI file with pyFAI's own reader and check it; errors name the file and
    the field.

    A PONI that names no detector (or a generic one without a shape) gets one from the
    frames: ``shape`` and the pixel size the PONI states, else ``pixel_size_m`` (from
    the frame header or the manifest). ``orientation`` (pyFAI's 1..4) overrides the
    PONI's image orientation; a detector whose shape is not the frames' is refused.
    """
    path = Path(poni_path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise GeometryError(f"{path}: cannot read PONI file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise GeometryError(f"{path}: not a PONI file (binary, not text)") from None
    fields = {}
    for line in text.splitlines():
        if ":" in line and not line.lstrip().startswith("#"):
            key, text_value = line.split(":", 1)
            fields[key.strip()] = text_value.strip()
    for name in PONI_FIELDS:
        if name not in fields:
            raise GeometryError(f"{path}: {name}: missing from the PONI file")
        try:
            value = float(fields[name])
        except ValueError:
            raise GeometryError(f"{path}: {name}: not a number ({fields[name]!r})") from None
        if not np.isfinite(value):
            raise GeometryError(f"{path}: {name}: not finite")
    if float(fields["Distance"]) <= 0:
        raise GeometryError(f"{path}: Distance: must be positive (m)")
    if not 1e-3 <= float(fields["Distance"]) <= 100:
        raise GeometryError(f"{path}: Distance: {fields['Distance']} m; expected 0.001..100 m")
    for name in ("Poni1", "Poni2"):
        if abs(float(fields[name])) > MAX_PONI_M:
            raise GeometryError(
                f"{path}: {name}: {fields[name]} m is off any detector (|value| <= {MAX_PONI_M} m)"
            )
    for name in ("Rot1", "Rot2", "Rot3"):
        if abs(float(fields[name])) > 2 * np.pi:
            raise GeometryError(f"{path}: {name}: {fields[name]} is not an angle in radians")
    if not 1e-12 < float(fields["Wavelength"]) < 1e-8:
        raise GeometryError(f"{path}: Wavelength: {fields['Wavelength']} m is not an X-ray")
    values = {name: float(fields[name]) for name in PONI_FIELDS}
    if "Detector" in fields:
        try:
            poni = PoniFile(str(path))
        except Exception as exc:  # pyFAI raises many types on a bad detector definition
            first = first_line(exc) or type(exc).__name__
            raise GeometryError(f"{path}: Detector: {fields['Detector']!r}: {first}") from None
        named: Detector | None = poni.detector
    else:  # pyFAI's reader needs a Detector line in v2 files: the numbers are read above
        named = None
        if "PixelSize1" in fields and "PixelSize2" in fields:  # a v1 PONI
            try:
                named = Detector(float(fields["PixelSize1"]), float(fields["PixelSize2"]))
            except ValueError:
                raise GeometryError(f"{path}: PixelSize1/2: not numbers") from None
    detector = _detector(path, named, shape, pixel_size_m, orientation)
    return AzimuthalIntegrator(
        dist=values["Distance"],
        poni1=values["Poni1"],
        poni2=values["Poni2"],
        rot1=values["Rot1"],
        rot2=values["Rot2"],
        rot3=values["Rot3"],
        wavelength=values["Wavelength"],
        detector=detector,
    )


def _detector(
    path: Path,
    detector: Detector | None,
    shape: tuple[int, int] | None,
    pixel_size_m: tuple[float, float] | None,
    orientation: int | None,
) -> Detector:
    """The PONI's detector, completed from the frames where it lacks a shape or pixel
    size, with ``orientation`` applied."""
    pixels = None
    if detector is not None and detector.pixel1 and detector.pixel2:
        pixels = (detector.pixel1, detector.pixel2)
    named = detector is not None and detector.shape is not None and pixels is not None
    if named:
        assert detector is not None
        if orientation is not None and int(detector.orientation) != orientation:
            config = {**detector.get_config(), "orientation": orientation}
            detector = detector_factory(type(detector).__name__, config)
    else:
        pixels = pixels or pixel_size_m
        if pixels is None:
            raise GeometryError(
                f"{path}: Detector: the PONI names no detector and no pixel size states it: "
                "give geometry.pixel_size_um in the manifest"
            )
        if shape is None:
            raise GeometryError(f"{path}: Detector: no detector shape (give frames to take it)")
        keep = int(detector.orientation) if detector is not None else 3
        detector = Detector(
            pixel1=pixels[0],
            pixel2=pixels[1],
            max_shape=shape,
            orientation=orientation or keep,
        )
    assert detector is not None
    if detector.shape is None:
        raise GeometryError(f"{path}: Detector: no detector shape")
    if shape is not None and tuple(detector.shape) != tuple(shape):
        raise GeometryError(
            f"{path}: Detector: {type(detector).__name__} has {tuple(detector.shape)} pixels, "
            f"the frames {tuple(shape)}"
        )
    return detector


def load_mask(mask_path: str | Path | None, shape: tuple[int, int]) -> np.ndarray:
    """A detector mask (nonzero = masked) as bool, checked against the detector shape."""
    if mask_path is None:
        return np.zeros(shape, dtype=bool)
    path = Path(mask_path)
    try:
        data = fabio.open(str(path)).data
    except Exception as exc:
        raise GeometryError(f"{path}: cannot read mask: {exc}") from None
    if data.shape != tuple(shape):
        raise GeometryError(f"{path}: mask shape {data.shape} != detector shape {tuple(shape)}")
    mask = data != 0
    if mask.all():
        raise GeometryError(f"{path}: masks every pixel (nonzero = masked): nothing to integrate")
    return mask


@dataclass(frozen=True)
class IntegratedBlock:
    """Integration of k frames: (k, npt) float32 arrays."""

    intensity: np.ndarray
    sigma: np.ndarray


class BatchIntegrator:
    """Integrates blocks of frames with pyFAI's CSR matrix; build once per process."""

    device = "cpu"  #: where :meth:`integrate` runs (:mod:`xrdmap.integrate_gpu`: a GPU)

    def __init__(
        self,
        ai: AzimuthalIntegrator,
        mask: np.ndarray,
        cfg: IntegrationConfig,
        *,
        count_cutoff: int,
    ) -> None:
        self.cfg = cfg
        self.shape = tuple(ai.detector.shape)
        self.count_cutoff = int(count_cutoff)
        self.mask = mask.astype(bool)
        probe = ai.integrate1d(
            np.zeros(self.shape, np.float32),
            cfg.npt,
            unit=cfg.unit,
            mask=self.mask,
            correctSolidAngle=cfg.correct_solid_angle,
            polarization_factor=cfg.polarization_factor,
            error_model=cfg.error_model,
            method=self.method,
        )
        engine = next(
            e.engine
            for m, e in ai.engines.items()
            if m.dim == 1 and m.split_lower == cfg.pixel_splitting and m.algo_lower == "csr"
        )
        npix = int(np.prod(self.shape))
        csr = sp.csr_matrix((engine.data, engine.indices, engine.indptr), shape=(cfg.npt, npix))
        self.radial = np.asarray(probe.radial, dtype=np.float64)
        self.coefficients = csr.astype(np.float32)
        self.coefficients_squared = csr.multiply(csr).tocsr().astype(np.float32)
        self._ct = csr.T.tocsr().astype(np.float64)  # pixel -> bins, for per-frame masking
        weight = np.ones(npix)
        if cfg.correct_solid_angle:
            weight *= ai.solidAngleArray(self.shape).ravel()
        if cfg.polarization_factor is not None:
            weight *= ai.polarization(self.shape, factor=cfg.polarization_factor).ravel()
        self.pixel_weight = weight
        self.bin_normalization = csr @ weight
        self._masked_idx = np.flatnonzero(self.mask)
        ai.reset()  # drop pyFAI's engine cache; the matrix lives here now

    @property
    def method(self) -> tuple[str, str, str]:
        return (self.cfg.pixel_splitting, "csr", "cython")

    def integrate(self, frames: np.ndarray) -> IntegratedBlock:
        """Integrate ``frames`` (k, ny, nx) int32 counts; returns (k, npt) arrays."""
        k = frames.shape[0]
        intensity = np.empty((k, self.cfg.npt), np.float32)
        sigma = np.empty((k, self.cfg.npt), np.float32)
        # products of at most batch_frames frames, of near-equal sizes (a block of 100
        # in 7 of 14-15 at 16, not 6 of 16 and one of 4, which costs twice per frame)
        n_products = -(-k // self.cfg.batch_frames)
        edges = np.linspace(0, k, n_products + 1).round().astype(int)
        for start, stop in itertools.pairwise(edges.tolist()):
            block = self._integrate_block(frames[start:stop])
            intensity[start:stop] = block.intensity
            sigma[start:stop] = block.sigma
        return IntegratedBlock(intensity, sigma)

    def _integrate_block(self, frames: np.ndarray) -> IntegratedBlock:
        k = frames.shape[0]
        flat = frames.reshape(k, -1)
        npix = flat.shape[1]
        # pixel-major float copy: the sparse product then runs over contiguous frames
        xt = np.ascontiguousarray(flat.T, dtype=np.float32)
        # negative (PILATUS flag) and overflowing pixels, in one unsigned comparison;
        # listed (masked) pixels have no coefficients and are left out
        over = flat.view(np.uint32) >= self.count_cutoff
        over[:, self._masked_idx] = False
        suspect = np.flatnonzero(over.any(axis=1))
        pix_parts = [np.flatnonzero(over[i]) for i in suspect]
        bad_pix = np.concatenate(pix_parts) if pix_parts else np.empty(0, np.intp)
        bad_frame = np.repeat(suspect, [p.size for p in pix_parts])
        xt[self._masked_idx] = 0.0
        xt[bad_pix, bad_frame] = 0.0
        sum_signal = self.coefficients @ xt
        np.maximum(xt, 1.0, out=xt)  # Poisson variance, at least one count
        xt[bad_pix, bad_frame] = 0.0
        sum_variance = self.coefficients_squared @ xt
        norm = np.repeat(self.bin_normalization[:, None], k, axis=1)
        if bad_pix.size:
            weight = self.pixel_weight[bad_pix]
            drop = sp.csr_matrix((weight, (bad_frame, bad_pix)), shape=(k, npix))
            norm -= (drop @ self._ct).toarray().T
        with np.errstate(divide="ignore", invalid="ignore"):
            intensity = np.where(norm > 0, sum_signal / norm, 0.0)
            sigma = np.where(norm > 0, np.sqrt(sum_variance) / norm, 0.0)
        return IntegratedBlock(intensity.T.astype(np.float32), sigma.T.astype(np.float32))


@dataclass(frozen=True)
class DetectorGeometry:
    """Everything that makes the integrator of a beamtime: small, shipped to tasks."""

    poni_path: Path
    mask_path: Path | None
    count_cutoff: int
    shape: tuple[int, int] | None = None  #: the frames' (from the first readable one)
    pixel_size_m: tuple[float, float] | None = None  #: where the PONI names no detector
    orientation: int | None = None  #: pyFAI's 1..4, overriding the PONI's

    def load(self) -> tuple[AzimuthalIntegrator, np.ndarray]:
        """The checked geometry and mask."""
        ai = load_geometry(
            self.poni_path,
            shape=self.shape,
            pixel_size_m=self.pixel_size_m,
            orientation=self.orientation,
        )
        return ai, load_mask(self.mask_path, tuple(ai.detector.shape))


def stored_geometry(settings: dict, geometry: dict, shape: tuple[int, int]) -> AzimuthalIntegrator:
    """The geometry a store was integrated with, from its provenance record: the PONI
    text (``geometry["poni"]``) and what completed it (``settings``: pixel size,
    orientation)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "stored.poni"
        path.write_text(geometry["poni"])
        pixel = settings.get("pixel_size_m")
        return load_geometry(
            path,
            shape=shape,
            pixel_size_m=tuple(pixel) if pixel else None,
            orientation=settings.get("orientation"),
        )


_CACHE: dict[tuple, BatchIntegrator | CudaIntegrator | GpuOrCpuIntegrator] = {}


def cached_batch_integrator(
    geometry: DetectorGeometry, cfg: IntegrationConfig
) -> BatchIntegrator | CudaIntegrator | GpuOrCpuIntegrator:
    """One integrator per process for a given geometry, mask and settings, on the
    device ``cfg.device`` selects."""
    from xrdmap.integrate_gpu import for_device  # it builds on this module

    key = (
        sha256_file(geometry.poni_path),
        sha256_file(geometry.mask_path) if geometry.mask_path else None,
        geometry,
        cfg.model_dump_json(),
    )
    if key not in _CACHE:
        ai, mask = geometry.load()
        cpu = BatchIntegrator(ai, mask, cfg, count_cutoff=geometry.count_cutoff)
        _CACHE[key] = for_device(cpu, cfg)
    return _CACHE[key]
