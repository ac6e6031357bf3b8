"""Production-shape deployment test of the provider: PostgreSQL, Celery on Redis, headless Chromium."""
