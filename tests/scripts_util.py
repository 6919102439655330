"""Importing a script of ``scripts/`` (not a package) in a test."""

import importlib.util
from pathlib import Path


def load_script(name):
    """The module ``scripts/<name>.py``, imported from its file."""
    path = Path(__file__).parent.parent / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
