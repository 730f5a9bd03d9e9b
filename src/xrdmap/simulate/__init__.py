"""A beamtime simulator that writes what a beamline writes, plus a separate ground truth.

Modules: ``geometry`` (PONI, mask, detector defects), ``profiles`` (1D line shapes),
``specimen`` (where each phase is in a corroded cross-section), ``frames`` (the 2D
forward model through pyFAI's geometry), ``writers`` (CBF, NeXus/HDF5, scan metadata),
``truth`` (labels from fractions), ``beamtime`` (the whole run).
"""
