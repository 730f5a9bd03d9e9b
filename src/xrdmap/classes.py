"""The classifier's nine multi-label classes, in output order."""

CLASS_NAMES: tuple[str, ...] = (
    "Fe3O4",
    "alpha-FeOOH",
    "gamma-FeOOH",
    "Fe(BCC)",
    "Fe(FCC)",
    "Fe3C",
    "resin only",
    "Fe without peaks",
    "Other",
)
CORROSION_PRODUCTS: tuple[str, ...] = ("Fe3O4", "alpha-FeOOH", "gamma-FeOOH")
SUBSTRATE_CLASSES: tuple[str, ...] = ("Fe(BCC)", "Fe(FCC)", "Fe3C", "Fe without peaks")
