"""`/metrics` of `tocsin serve --workers 2` reports the whole process group, whichever worker
answers; a real Prometheus scrapes it and answers queries from it; the alerting rules load
and pass their own unit tests in promtool."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tocsin.embedded import EmbeddedNats, free_port
from tocsin.metrics_group import REPORTING, SOCKET_SUFFIX, runtime_dir

from support import (
    Subscriber,
    Tocsin,
    TocsinFactory,
    auth,
    publisher_token,
    sample_value,
    user_token,
    wait_for,
)

ALERTS = Path(__file__).parents[2] / "ops" / "prometheus" / "alerts.yaml"
ALERT_TESTS = ALERTS.with_name("alerts.test.yaml")
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
PUBLISHED = "tocsin_notifications_published_total"


def sockets(proc: Tocsin) -> list[Path]:
    """The metrics sockets of `proc`'s workers (where tocsin puts them: under the data dir,
    or in the temporary directory when that path is too long for a unix socket)."""
    assert proc.process is not None
    return sorted(runtime_dir(proc.data_dir, proc.process.pid).glob(f"*{SOCKET_SUFFIX}"))


async def worker_text(path: Path) -> str:
    """One worker's own metrics, read from its socket as its siblings read them."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        return (await reader.read()).decode()
    finally:
        writer.close()


async def publish_on_a_fresh_connection(url: str, text: str) -> None:
    """Publish one notification over a new TCP connection (the kernel picks its worker)."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        response = await client.post(
            "/notifications",
            json={"recipients": ["ann"], "kind": "k", "subject_id": "s", "text": text},
            headers=auth(publisher_token()),
        )
        assert response.status_code == 202, response.text


async def publish_until_both_workers_did(proc: Tocsin) -> int:
    """Publish until each worker has stored at least one; how many were published."""
    await wait_for(lambda: len(sockets(proc)) == 2, 20, "both workers' metrics sockets")
    published = 0
    while True:
        await publish_on_a_fresh_connection(proc.url, f"n{published}")
        published += 1
        texts = [await worker_text(path) for path in sockets(proc)]
        if all((sample_value(text, PUBLISHED) or 0) > 0 for text in texts):
            return published
        assert published < 500, "every publish landed on the same worker"


@pytest.fixture
def two_workers(nats_server: EmbeddedNats, tocsin_factory: TocsinFactory) -> Tocsin:
    return tocsin_factory(nats_server.url, "--workers", "2")


async def test_one_scrape_reports_the_whole_group(two_workers: Tocsin) -> None:
    published = await publish_until_both_workers_did(two_workers)
    per_worker = [await worker_text(path) for path in sockets(two_workers)]
    assert sum(sample_value(text, PUBLISHED) or 0 for text in per_worker) == published

    async def scrape() -> str:
        async with httpx.AsyncClient(timeout=10) as client:  # a new connection each time
            return (await client.get(two_workers.url + "/metrics")).text

    for _ in range(8):  # each scrape lands on either worker
        text = await scrape()
        assert sample_value(text, PUBLISHED) == published
        assert sample_value(text, REPORTING) == 2
        assert sample_value(text, "tocsin_nats_connected") == 1
    # Only the worker holding ann's stream receives her notifications: the group counts
    # each once, whichever worker answers the scrape.
    received = "tocsin_notifications_received_total"
    sub = Subscriber(two_workers.url, user_token("ann")).start()
    try:
        await sub.connected()
        for n in range(3):
            await publish_on_a_fresh_connection(two_workers.url, f"live {n}")
        await wait_for(lambda: len(sub.ids) == 3, what="ann's live notifications")
        deadline = time.monotonic() + 20
        while sample_value(await scrape(), received) != 3:
            assert time.monotonic() < deadline, "the group's count of received is not 3"
            await asyncio.sleep(0.05)
    finally:
        await sub.close()

    assert two_workers.process is not None
    group_dir = runtime_dir(two_workers.data_dir, two_workers.process.pid)
    assert await asyncio.to_thread(two_workers.stop, signal.SIGTERM) == 0
    assert not group_dir.exists(), "the group's runtime directory outlived it"


@pytest.fixture
def prometheus(two_workers: Tocsin, tmp_path: Path) -> Iterator[str]:
    """A real Prometheus scraping the two-worker tocsin every second; its base URL."""
    if not Path(PROMETHEUS).exists():
        pytest.skip("Prometheus is not installed (Debian package `prometheus`; CI installs it)")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "tocsin",
                        "static_configs": [{"targets": [two_workers.url.removeprefix("http://")]}],
                    }
                ],
                "rule_files": [str(ALERTS)],
            }
        )
    )
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((tmp_path / "prometheus.log").read_text())
            time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


async def test_prometheus_scrapes_the_group_and_answers_queries(
    two_workers: Tocsin, prometheus: str
) -> None:
    published = await publish_until_both_workers_did(two_workers)

    async def query(expression: str) -> list[dict[str, object]]:
        async with httpx.AsyncClient(base_url=prometheus, timeout=10) as client:
            answer = (await client.get("/api/v1/query", params={"query": expression})).json()
        assert answer["status"] == "success", answer
        result: list[dict[str, object]] = answer["data"]["result"]
        return result

    expression = f'sum({PUBLISHED}{{job="tocsin"}})'
    deadline = time.monotonic() + 30
    while True:
        result = await query(expression)
        if result and float(result[0]["value"][1]) == published:  # type: ignore[index]
            break
        assert time.monotonic() < deadline, f"Prometheus never saw {published}: {result}"
        await asyncio.sleep(0.25)
    [up] = await query('up{job="tocsin"}')
    assert up["value"][1] == "1"  # type: ignore[index]
    async with httpx.AsyncClient(base_url=prometheus, timeout=10) as client:
        rules = (await client.get("/api/v1/rules")).json()["data"]["groups"]
    assert [group["name"] for group in rules] == ["tocsin"]
    assert all(rule["health"] != "err" for rule in rules[0]["rules"])


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if not Path(PROMTOOL).exists():
        pytest.skip("promtool is not installed (Debian package `prometheus`; CI installs it)")
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, check=False)


def test_the_alerting_rules_are_valid() -> None:
    checked = promtool("check", "rules", str(ALERTS))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_alert_has_unit_tests_and_they_pass() -> None:
    import yaml

    alerts = {
        rule["alert"]
        for group in yaml.safe_load(ALERTS.read_text())["groups"]
        for rule in group["rules"]
    }
    cases = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    tested = {case["alertname"] for test in cases for case in test.get("alert_rule_test", [])}
    assert tested == alerts
    fired = {
        case["alertname"]
        for test in cases
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert fired == alerts, "every alert needs a case where it fires"
    result = promtool("test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
