"""The project layout keeps Python's standard library `queue` reachable under every entry point."""

import importlib
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_queue_is_the_standard_library():
    import queue

    assert hasattr(queue, "Empty") and hasattr(queue, "SimpleQueue")
    assert Path(queue.__file__).parent != ROOT / "queue"


def test_queue_folder_is_not_a_package_and_ticketing_is():
    assert not (ROOT / "queue" / "__init__.py").exists()
    assert not (ROOT / "tests" / "queue").exists()
    ticketing = importlib.import_module("ticketing")
    assert Path(next(iter(ticketing.__path__))).resolve() == (ROOT / "queue").resolve()


def test_queue_is_the_standard_library_under_python_dash_m_and_flask():
    """`python -m` and `flask` put the project root first on sys.path, where the shadowing used to hide."""
    code = "import queue, redis, concurrent.futures, apscheduler.schedulers.background; print(queue.__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert not out.stdout.strip().startswith(str(ROOT / "queue"))
    assert "Empty" in dir(importlib.import_module("queue"))
