"""The errors of bad input, in one place: each message is one line that names the file,
point or field. The command line prints them as such (exit status 2); anything else
is a bug and keeps its traceback."""


def first_line(exc: BaseException) -> str:
    """The first line of another library's error message, at most 160 characters, to
    quote in one of ours ('' if it has none)."""
    return next(iter(str(exc).strip().splitlines()), "")[:160]


class InputError(ValueError):
    """Bad input the user can fix; the message names the file, point or field."""


class ConfigError(InputError):
    """A configuration file is missing, unreadable or holds a bad value."""


class BeamtimeError(InputError):
    """The beamtime folder or its metadata cannot be used; the message names the file."""


class GeometryError(InputError):
    """A PONI or mask file is missing, unreadable or inconsistent."""


class StoreError(InputError):
    """The store is missing, not an xrdmap store, or does not hold what was asked."""


class StoreBusyError(StoreError):
    """Another process holds the store's lock; the message names it."""


class LabelsError(InputError):
    """A labels file that cannot be used; the message names the file, line and field."""


class SimulationError(InputError):
    """The simulation cannot start (e.g. the output folder exists)."""


class RegistryError(InputError):
    """A model version is missing, corrupt, or the registry cannot be written."""
