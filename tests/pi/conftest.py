"""Make the node test helpers of tests/controller importable (pytest runs in importlib mode)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "controller"))
