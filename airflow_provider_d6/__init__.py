"""Apache Airflow provider for the d6+ Integrate API (d6+ SAMS)."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
