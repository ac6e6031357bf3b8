"""Benchmarks of the d6 provider against a bare client, HttpHook and d6's rate limit."""
