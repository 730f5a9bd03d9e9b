"""The numerical core and the models must run without Prefect: importing all of them
loads no prefect."""

import subprocess
import sys


def test_core_does_not_import_prefect():
    code = (
        "import importlib, pkgutil, sys, xrdmap, models\n"
        "for pkg in (xrdmap, models):\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(m.name)\n"
        "bad = sorted(n for n in sys.modules if n == 'prefect' or n.startswith('prefect.'))\n"
        "print(len(list(pkgutil.walk_packages(xrdmap.__path__, 'xrdmap.'))))\n"
        "assert not bad, bad\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= 8  # really walked the modules
