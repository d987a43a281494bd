"""The version of l3net, defined here only (pyproject.toml reads it; the package and its modules import it)."""

__version__ = "0.1.0"
