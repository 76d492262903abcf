"""The app as Litestar 3 will read it: every handler parameter and dependency declared, none inferred."""

from __future__ import annotations

import json
import subprocess
import sys

# A fresh interpreter, so the warnings raised while the route modules are imported are seen too.
BUILD_AND_REPORT_WARNINGS = """
import json, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    from api.app import create_server
    from core.settings import Settings
    create_server(Settings(_env_file=None, database_url="sqlite:///unused.db", redis_url="redis://127.0.0.1:1/0",
                           environment="test"))  # production without a key refuses to start
print(json.dumps([f"{w.category.__name__}: {w.message}" for w in caught if issubclass(w.category, DeprecationWarning)]))
"""


def test_building_the_app_raises_no_deprecation_warning() -> None:
    built = subprocess.run([sys.executable, "-c", BUILD_AND_REPORT_WARNINGS], capture_output=True, text=True,
                           timeout=120, check=True)
    assert json.loads(built.stdout.splitlines()[-1]) == []
