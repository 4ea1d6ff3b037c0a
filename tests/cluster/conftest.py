"""Fixtures for the cluster tests (the harness is cluster_harness.py)."""

import pytest

from cluster_harness import Cluster


@pytest.fixture
def cluster_factory():
    """Makes clusters; every node still running is stopped after the test."""
    made = []

    def make(nodes=4, drives=1, **kw):
        c = Cluster(nodes, drives, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop_all()
