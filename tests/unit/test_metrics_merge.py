"""Several workers' Prometheus texts merged as one group's: what is summed, what is not."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tocsin.metrics_group import REPORTING, merge, runtime_dir

WORKER_A = b"""# HELP tocsin_notifications_published_total Notifications stored
# TYPE tocsin_notifications_published_total counter
tocsin_notifications_published_total 3.0
# HELP tocsin_resets_total Resets
# TYPE tocsin_resets_total counter
tocsin_resets_total{reason="too_many"} 2.0
# HELP tocsin_connections_open Open now
# TYPE tocsin_connections_open gauge
tocsin_connections_open 5.0
# HELP tocsin_nats_connected Connected
# TYPE tocsin_nats_connected gauge
tocsin_nats_connected 1.0
# HELP process_start_time_seconds Start
# TYPE process_start_time_seconds gauge
process_start_time_seconds 1000.0
# HELP target_info Target metadata
# TYPE target_info gauge
target_info{process_pid="11"} 1.0
# HELP tocsin_delivery_latency_seconds Latency
# TYPE tocsin_delivery_latency_seconds histogram
tocsin_delivery_latency_seconds_bucket{le="0.01",mode="live"} 1.0
tocsin_delivery_latency_seconds_bucket{le="+Inf",mode="live"} 2.0
tocsin_delivery_latency_seconds_sum{mode="live"} 0.5
tocsin_delivery_latency_seconds_count{mode="live"} 2.0
"""
WORKER_B = b"""# HELP tocsin_notifications_published_total Notifications stored
# TYPE tocsin_notifications_published_total counter
tocsin_notifications_published_total 4.0
# HELP tocsin_resets_total Resets
# TYPE tocsin_resets_total counter
tocsin_resets_total{reason="too_many"} 1.0
tocsin_resets_total{reason="expired"} 7.0
# HELP tocsin_connections_open Open now
# TYPE tocsin_connections_open gauge
tocsin_connections_open 2.0
# HELP tocsin_nats_connected Connected
# TYPE tocsin_nats_connected gauge
tocsin_nats_connected 0.0
# HELP process_start_time_seconds Start
# TYPE process_start_time_seconds gauge
process_start_time_seconds 999.5
# HELP target_info Target metadata
# TYPE target_info gauge
target_info{process_pid="12"} 1.0
# HELP tocsin_delivery_latency_seconds Latency
# TYPE tocsin_delivery_latency_seconds histogram
tocsin_delivery_latency_seconds_bucket{le="0.01",mode="live"} 4.0
tocsin_delivery_latency_seconds_bucket{le="+Inf",mode="live"} 4.0
tocsin_delivery_latency_seconds_sum{mode="live"} 0.01
tocsin_delivery_latency_seconds_count{mode="live"} 4.0
"""


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def types(text: bytes) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(text.decode())}


def test_counters_histograms_and_counting_gauges_are_summed_per_label_set() -> None:
    merged = samples(merge([WORKER_A, WORKER_B]))
    assert merged[("tocsin_notifications_published_total", ())] == 7.0
    assert merged[("tocsin_resets_total", (("reason", "too_many"),))] == 3.0
    assert merged[("tocsin_resets_total", (("reason", "expired"),))] == 7.0
    assert merged[("tocsin_connections_open", ())] == 7.0
    live = (("mode", "live"),)
    assert merged[("tocsin_delivery_latency_seconds_bucket", (("le", "0.01"), *live))] == 5.0
    assert merged[("tocsin_delivery_latency_seconds_bucket", (("le", "+Inf"), *live))] == 6.0
    assert merged[("tocsin_delivery_latency_seconds_sum", live)] == 0.51
    assert merged[("tocsin_delivery_latency_seconds_count", live)] == 6.0


def test_gauges_that_are_not_amounts_are_combined_by_their_meaning() -> None:
    merged = samples(merge([WORKER_A, WORKER_B]))
    assert merged[("tocsin_nats_connected", ())] == 0.0  # one worker has lost NATS
    assert merged[("process_start_time_seconds", ())] == 999.5
    assert merged[("target_info", (("process_pid", "11"),))] == 1.0
    assert merged[("target_info", (("process_pid", "12"),))] == 1.0
    assert merged[(REPORTING, ())] == 2.0


def test_the_merged_text_keeps_the_types_and_parses() -> None:
    text = merge([WORKER_A, WORKER_B])
    assert types(text) == {**types(WORKER_A), REPORTING: "gauge"}
    assert b"# TYPE tocsin_delivery_latency_seconds histogram" in text
    assert merge([WORKER_A]).replace(b"\n", b"") != b""
    assert samples(merge([WORKER_A]))[("tocsin_notifications_published_total", ())] == 3.0


def test_runtime_dir_fits_a_unix_socket_path(tmp_path: Path) -> None:
    assert runtime_dir(tmp_path, 4321) == tmp_path.resolve() / "run" / "4321"
    deep = tmp_path / ("d" * 120)
    moved = runtime_dir(deep, 4321)
    assert moved.name == "4321"
    assert len(str(moved / "4000000.metrics.sock")) <= 100
    assert runtime_dir(deep, 4321) == moved  # the same for every worker of the group
