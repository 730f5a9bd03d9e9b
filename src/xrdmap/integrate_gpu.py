"""The batched integration of :mod:`xrdmap.integrate` on a CUDA GPU, with CuPy.

Same matrix (pyFAI's CSR, as :class:`~xrdmap.integrate.BatchIntegrator` took it), same
sums. Per block of frames the int32 counts go to the device through a pinned host
buffer, one element-wise kernel turns them into three pixel-major arrays, three sparse
x dense products (cuSPARSE SpMM) give, per 2theta bin and frame::

    sum_signal    = C   @ (x           where the pixel is good, else 0)
    sum_variance  = C^2 @ (max(x, 1)   where the pixel is good, else 0)
    normalization = C @ w - C @ (w     where the pixel is bad,  else 0)

and a second element-wise kernel divides. "bad" is negative (PILATUS flag) or at the
count cutoff, frame by frame; listed (masked) pixels have no coefficients. Signal and
variance are float32 sums, the normalization float64, as on the CPU. Two pinned
buffers and two streams alternate, so the host copies one block while the device
works on the other; they hold the blocks the caller passes (ingest's 100 frames), up
to ``block_frames``.

Selection (``integration.device``): ``cpu``; ``cuda`` (an error where no device is
usable, and a device error fails the chunk); ``auto``, the GPU where CuPy finds one,
else the CPU, and the CPU for the rest of the process once the GPU fails (out of
device memory, a kernel that cannot be compiled, a lost device), saying why.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from xrdmap.errors import ConfigError, first_line
from xrdmap.integrate import BatchIntegrator, IntegratedBlock

if TYPE_CHECKING:
    from xrdmap.config import IntegrationConfig

#: The most frames per device block: 512 frames of the PILATUS 100k take about 1 GB on
#: the device (counts, two float32 and one float64 pixel-major arrays).
GPU_BLOCK_FRAMES = 512

log = logging.getLogger(__name__)

_PREPARE = r"""
    const bool good = (unsigned int)x < cutoff;
    signal = good ? (float)x : 0.0f;
    variance = good ? fmaxf((float)x, 1.0f) : 0.0f;
    dropped = good ? 0.0 : w;
"""
#: As the CPU path: the float32 sums over a float64 normalization, the square root of the
#: variance in float32; bins left without pixels are 0.
_FINISH = r"""
    const double norm = norm0 - dropped;
    intensity = norm > 0 ? (float)(signal / norm) : 0.0f;
    sigma = norm > 0 ? (float)(sqrtf(variance) / norm) : 0.0f;
"""


def cuda_unavailable() -> str | None:
    """Why no CUDA device can integrate here (CuPy missing, no device), or None."""
    try:
        import cupy
    except ImportError:
        return "CuPy is not installed (pip install 'xrdmap[cuda12]' or 'xrdmap[cuda13]')"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError; a missing driver library raises others
        return f"no CUDA device ({str(exc).strip() or type(exc).__name__})"
    return None if count else "no CUDA device"


def require_cuda() -> None:
    """A :class:`~xrdmap.errors.ConfigError` saying why, where no CUDA device is usable."""
    reason = cuda_unavailable()
    if reason:
        raise ConfigError(f"integration.device: cuda, but {reason}; use auto or cpu")


def for_device(
    cpu: BatchIntegrator, cfg: IntegrationConfig
) -> BatchIntegrator | CudaIntegrator | GpuOrCpuIntegrator:
    """The integrator ``cfg.device`` asks for, built on ``cpu``'s matrix."""
    if cfg.device == "cuda":
        require_cuda()
        return CudaIntegrator(cpu)
    if cfg.device == "cpu" or cuda_unavailable():
        return cpu
    return GpuOrCpuIntegrator(cpu)


class GpuOrCpuIntegrator:
    """``integration.device: auto`` where a CUDA device is present: the GPU path until it
    fails, then the CPU path for the rest of the process. The failure is logged once and
    stays in :attr:`device` (each chunk's ``integrated_on``, the run's summary)."""

    def __init__(self, cpu: BatchIntegrator, **gpu_options: Any) -> None:
        self.cpu = cpu
        self.cfg = cpu.cfg
        self.shape = cpu.shape
        self.gpu: CudaIntegrator | None = None
        self.device = "cpu"
        try:
            self.gpu = CudaIntegrator(cpu, **gpu_options)
            self.device = self.gpu.device
        except Exception as exc:  # no usable device after all: CuPy's errors have no common base
            self._fall_back("the GPU", exc)

    def integrate(self, frames: np.ndarray) -> IntegratedBlock:
        """Integrate ``frames`` (k, ny, nx) on the GPU, or on the CPU once it has failed."""
        if self.gpu is not None:
            try:
                return self.gpu.integrate(frames)
            except Exception as exc:  # out of memory, NVRTC, a lost device: all CuPy's own
                self._fall_back(self.gpu.device, exc)
        return self.cpu.integrate(frames)

    def _fall_back(self, gpu: str, exc: Exception) -> None:
        message = first_line(exc)
        reason = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
        self.device = f"cpu ({gpu} failed: {reason})"
        log.warning("integration.device auto: %s failed (%s); integrating on the CPU", gpu, reason)
        self.gpu = None  # its buffers go back to CuPy's pool


class CudaIntegrator:
    """:class:`~xrdmap.integrate.BatchIntegrator`'s integration on the current CUDA
    device; build once per process (it holds the matrices and buffers there)."""

    def __init__(self, cpu: BatchIntegrator, *, block_frames: int = GPU_BLOCK_FRAMES) -> None:
        import cupy as cp
        import cupyx.scipy.sparse as csp

        self.cfg = cpu.cfg
        self.shape = cpu.shape
        self.block_frames = block_frames
        props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
        self.device = f"cuda:{cp.cuda.Device().id} {props['name'].decode()}"
        self._cutoff = np.uint32(min(cpu.count_cutoff, np.iinfo(np.uint32).max))
        self._c = csp.csr_matrix(cpu.coefficients)  # float32, as the CPU's signal and variance
        self._c2 = csp.csr_matrix(cpu.coefficients_squared)
        self._c64 = csp.csr_matrix(cpu.coefficients.astype(np.float64))
        self._w = cp.asarray(cpu.pixel_weight, dtype=cp.float64)
        self._norm = cp.asarray(cpu.bin_normalization, dtype=cp.float64)[None, :]
        # two of each: the host fills one pinned buffer while the device works on the
        # other; sized by the first blocks that need them (see _hold)
        self._pinned: list[np.ndarray] = []
        self._frames: list[Any] = []
        self._streams = [cp.cuda.Stream(non_blocking=True) for _ in range(2)]
        self._prepare = cp.ElementwiseKernel(
            "int32 x, float64 w, uint32 cutoff",
            "float32 signal, float32 variance, float64 dropped",
            _PREPARE,
            "xrdmap_prepare_counts",
        )
        self._finish = cp.ElementwiseKernel(
            "float32 signal, float32 variance, float64 norm0, float64 dropped",
            "float32 intensity, float32 sigma",
            _FINISH,
            "xrdmap_finish_bins",
        )

    def integrate(self, frames: np.ndarray) -> IntegratedBlock:
        """Integrate ``frames`` (k, ny, nx) int32 counts; returns (k, npt) arrays."""
        k = frames.shape[0]
        flat = frames.reshape(k, -1)
        intensity = np.empty((k, self.cfg.npt), np.float32)
        sigma = np.empty((k, self.cfg.npt), np.float32)
        pending: list[tuple[slice, Any, Any] | None] = [None, None]
        self._hold(max(min(k, self.block_frames), 1))

        def collect(slot: int) -> None:
            stream = self._streams[slot]
            stream.synchronize()  # its pinned buffer is free again
            job, pending[slot] = pending[slot], None
            if job is not None:
                rows, on_device_i, on_device_s = job
                intensity[rows] = on_device_i.get(stream=stream)
                sigma[rows] = on_device_s.get(stream=stream)

        for n, start in enumerate(range(0, k, self.block_frames)):
            slot = n % 2
            collect(slot)
            rows = slice(start, min(start + self.block_frames, k))
            pending[slot] = (rows, *self._submit(slot, flat[rows]))
        collect(0)
        collect(1)
        return IntegratedBlock(intensity, sigma)

    def _hold(self, rows: int) -> None:
        """Buffers of at least ``rows`` frames (none is in use between calls)."""
        if self._frames and self._frames[0].shape[0] >= rows:
            return
        import cupy as cp
        import cupyx

        npix = int(np.prod(self.shape))
        self._frames, self._pinned = [], []  # the smaller ones go back to the pools first
        self._frames = [cp.empty((rows, npix), cp.int32) for _ in range(2)]
        self._pinned = [cupyx.empty_pinned((rows, npix), np.int32) for _ in range(2)]

    def _submit(self, slot: int, flat: np.ndarray) -> tuple[Any, Any]:
        """Queue one block on ``slot``'s stream; returns its (k, npt) device results."""
        k = flat.shape[0]
        pinned = self._pinned[slot][:k]
        np.copyto(pinned, flat, casting="no")
        stream = self._streams[slot]
        with stream:
            x = self._frames[slot][:k]
            x.set(pinned, stream=stream)
            signal, variance, dropped = self._prepare(x, self._w, self._cutoff)
            # (npix, k) views of row-major blocks are column-major: what SpMM takes; its
            # (npt, k) column-major results, seen transposed, are the (k, npt) rows
            sum_signal = self._c @ signal.T
            sum_variance = self._c2 @ variance.T
            dropped_norm = self._c64 @ dropped.T
            intensity, sigma = self._finish(
                sum_signal.T, sum_variance.T, self._norm, dropped_norm.T
            )
        return intensity, sigma
