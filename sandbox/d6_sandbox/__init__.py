"""A local emulator of the d6+ Integrate API: seeded data, d6's errors and quirks, faults on demand.

Run it with ``d6-sandbox`` (see ``python -m d6_sandbox --help``) or from tests with
:func:`d6_sandbox.testing.run_sandbox`.
"""

from __future__ import annotations
