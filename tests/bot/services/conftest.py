"""The monthly-cycle fixtures (``support.cycle_fixtures``) for the rounds and hints service tests,
which ask for the test catalog with ``pytestmark``."""

from __future__ import annotations

from support.cycle_fixtures import (  # noqa: F401  (fixtures)
    any_factory,
    any_url,
    catalog,
    client,
    factory,
    round_id,
    settings,
    slack_server,
    url,
)
