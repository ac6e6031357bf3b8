"""Sensors of the d6+ Integrate provider."""
