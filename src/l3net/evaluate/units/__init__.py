"""Section 3.5.3 and Figures 3-9: what each pool4 unit prefers.

- :mod:`.protocol`: settings, the rankings of the trained and random networks, the class counts and
  :func:`evaluate_units` (the table).
- :mod:`.ranking`: the measures: each unit's top inputs, their classes, the classes with a unit.
- :mod:`.pictures`: the units' top inputs with their heatmaps, gathered and drawn.
"""

from __future__ import annotations

from .pictures import UnitGrid, counts_figure, frames_figure, grid_figure, unit_grid
from .protocol import PROTOCOL, TITLE, UnitsConfig, UnitsResult, evaluate_units
from .ranking import classes_with_unit, select_units, top_inputs, unit_preferences

__all__ = [
    "PROTOCOL", "TITLE", "UnitGrid", "UnitsConfig", "UnitsResult", "classes_with_unit", "counts_figure",
    "evaluate_units", "frames_figure", "grid_figure", "select_units", "top_inputs", "unit_grid", "unit_preferences",
]
