"""Fixtures of the reward tests."""

from __future__ import annotations

import pytest
from reward_helpers import load_tasks


@pytest.fixture(scope="session")
def tasks(shared_data):
    """``tasks(dataset)`` -> the shared dataset's Task records, converted by the project's adapter."""
    return lambda dataset: load_tasks(shared_data, dataset)
