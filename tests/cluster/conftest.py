"""Fixtures for the cluster tests (the harness is cluster_harness.py)."""

import shutil

import pytest

from cluster_harness import Cluster, clients


# The client suite's hook: marks a test that failed in any phase, which
# `cluster_factory` reads to keep its logs.
pytest_runtest_makereport = clients.pytest_runtest_makereport


@pytest.fixture
def cluster_factory(request):
    """Makes clusters. After the test every node still running is stopped and
    each cluster's directory removed (the nodes' logs are kept in
    tests/artifacts/logs/ if the test failed): a cluster writes hundreds of
    MiB, and a run must not need the disk of all of them at once."""
    made = []

    def make(nodes=4, drives=1, **kw):
        c = Cluster(nodes, drives, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop_all()
        if getattr(request.node, "basalt_failed", False):
            clients.keep_logs(c.dir, request.node.name)
        shutil.rmtree(c.dir, ignore_errors=True)
