"""What users touch: the ``xrdmap`` command line and the labeling page. Thin: the logic
is in the ``xrdmap`` core, ``models``, ``tasks`` and ``flows``."""
