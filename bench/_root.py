"""Imported first by a benchmark run as ``python bench/NAME.py`` (its own folder is then sys.path[0]): puts the
repository root on sys.path, so it imports ``labkit`` and ``ui`` from this checkout."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
