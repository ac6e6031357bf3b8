"""Triggers of the d6+ Integrate provider."""
