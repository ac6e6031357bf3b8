"""A local emulator of the d6+ Integrate API: seeded data, d6's errors and quirks, faults on demand.

Run it with ``d6-sandbox`` (see ``python -m airflow_provider_d6.sandbox --help``) or from tests with
:func:`airflow_provider_d6.sandbox.testing.run_sandbox`.
"""

from __future__ import annotations
