"""Fixtures of the chaos tests: a real 3-node JetStream cluster and tocsin processes on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from nats_cluster import NatsCluster

from support import Tocsin


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    """Three nats-servers from ops/nats/, with a meta leader elected; killed after the test."""
    workdir = tmp_path / "cluster"
    workdir.mkdir()
    cluster = NatsCluster(workdir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster_tocsins(
    nats_cluster: NatsCluster, tocsin_factory: Callable[..., Tocsin]
) -> list[Tocsin]:
    """Two tocsin processes on the cluster, with the stream and bucket replicated three ways."""
    return [
        tocsin_factory(nats_cluster.urls, "--replicas", "3", "--heartbeat", "2s") for _ in range(2)
    ]
