"""The monthly-cycle fixtures (``support.cycle_fixtures``), with the test catalog for every test."""

from __future__ import annotations

import pytest
from support.cycle_fixtures import (  # noqa: F401  (fixtures)
    any_factory,
    any_url,
    catalog,
    client,
    factory,
    settings,
    slack_server,
    url,
)


@pytest.fixture(autouse=True)
def _catalog(catalog):  # noqa: F811
    return catalog
