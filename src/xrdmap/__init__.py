"""xrdmap: synchrotron XRD mapping beamtimes to phase maps.

The numerical core (this package) never imports Prefect; ``tasks/`` and ``flows/``
wrap it for orchestration.
"""

__version__ = "0.1.0"
