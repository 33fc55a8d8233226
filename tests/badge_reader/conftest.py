"""Register the fake chip module as `fake_mfrc522` for this folder's tests.

pytest runs in importlib mode (tests/ is not on sys.path); registering just
this one module keeps the folder's other files from shadowing anything.
"""

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "fake_mfrc522", Path(__file__).with_name("fake_mfrc522.py")
)
assert _spec is not None and _spec.loader is not None
_module = importlib.util.module_from_spec(_spec)
sys.modules["fake_mfrc522"] = _module
_spec.loader.exec_module(_module)
