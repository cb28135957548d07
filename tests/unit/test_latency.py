"""The latency histogram tocsin aggregates itself exports what the SDK's own would have.

Each test records the same values into tocsin's `LatencyHistogram` (through the meter
provider `telemetry.prometheus_meter_provider` makes) and into an OpenTelemetry SDK
histogram of the same name and buckets, and compares what each reader is handed."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import Histogram as HistogramInstrument
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    HistogramDataPoint,
    InMemoryMetricReader,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from prometheus_client import CollectorRegistry, generate_latest

from tocsin import latency, telemetry
from tocsin.entry import Notice

# On the bounds, between them, below the first, above the last, and zero.
VALUES = (0.0, 0.0005, 0.0007, 0.001, 0.004, 0.025, 0.3, 1.0, 59.9, 300.0, 3600.0, 7200.5)


def _sdk_histogram(provider: MeterProvider) -> Any:
    return provider.get_meter("tocsin").create_histogram(
        latency.NAME,
        unit=latency.UNIT,
        description=latency.DESCRIPTION,
        explicit_bucket_boundaries_advisory=telemetry.LATENCY_BUCKETS,
    )


def _histogram_lines(text: bytes) -> list[str]:
    return [
        line
        for line in text.decode().splitlines()
        if line.startswith(("tocsin_delivery_latency", "# HELP tocsin_delivery_latency"))
        or line.startswith("# TYPE tocsin_delivery_latency")
    ]


def test_a_scrape_shows_what_the_sdk_histogram_would_have() -> None:
    ours, ours_registry = telemetry.prometheus_meter_provider()
    theirs_registry = CollectorRegistry(auto_describe=True)
    theirs = MeterProvider(
        metric_readers=[PrometheusMetricReader(registry=theirs_registry, scope_info_enabled=False)],
        shutdown_on_exit=False,
    )
    telemetry.use(meter_provider=ours, registry=ours_registry)
    try:
        sdk = _sdk_histogram(theirs)
        for mode in (telemetry.LIVE, telemetry.REPLAY):
            for value in VALUES if mode == telemetry.LIVE else VALUES[3:7]:
                telemetry._state.latency.record(value, mode)
                sdk.record(value, {"mode": mode})
        expected = _histogram_lines(generate_latest(theirs_registry))
        assert len(expected) == 2 * (len(telemetry.LATENCY_BUCKETS) + 3) + 2
        assert _histogram_lines(generate_latest(ours_registry)) == expected
        # Cumulative: a second scrape after more values still matches.
        telemetry._state.latency.record(0.002, telemetry.LIVE)
        sdk.record(0.002, {"mode": telemetry.LIVE})
        assert _histogram_lines(generate_latest(ours_registry)) == _histogram_lines(
            generate_latest(theirs_registry)
        )
    finally:
        telemetry.use()


def test_written_notifications_are_recorded_by_mode() -> None:
    provider, registry = telemetry.prometheus_meter_provider()
    telemetry.use(meter_provider=provider, registry=registry)
    try:
        now = telemetry.time.time_ns()
        notice = Notice(
            seq=1,
            time_ns=now - 2_000_000,
            gone_ns=0,
            id="1",
            json=b"{}",
            kind="k",
            subject_id="s",
            actor_id=None,
            key=None,
            expires_ns=0,
        )
        telemetry.OtelTelemetry().written([(1, b"", notice)] * 3, telemetry.REPLAY, "c", "u", now)
        text = generate_latest(registry).decode()
        assert 'tocsin_delivery_latency_seconds_count{mode="replay"} 3.0' in text
        assert 'tocsin_delivery_latency_seconds_bucket{le="0.001",mode="replay"} 0.0' in text
        assert 'tocsin_delivery_latency_seconds_bucket{le="0.05",mode="replay"} 3.0' in text
        assert 'mode="live"' not in text.split("tocsin_delivery_latency")[-1]
    finally:
        telemetry.use()


class _Kept(MetricExporter):
    """An exporter that keeps what it is sent."""

    def __init__(self, temporality: AggregationTemporality) -> None:
        super().__init__(preferred_temporality={HistogramInstrument: temporality})
        self.batches: list[MetricsData] = []

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any):  # type: ignore[no-untyped-def]
        self.batches.append(metrics_data)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


def _points(batch: MetricsData) -> tuple[AggregationTemporality, list[HistogramDataPoint]]:
    for resource in batch.resource_metrics:
        for scoped in resource.scope_metrics:
            for metric in scoped.metrics:
                if metric.name == latency.NAME:
                    assert (metric.unit, metric.description) == (latency.UNIT, latency.DESCRIPTION)
                    data: Any = metric.data
                    points = sorted(data.data_points, key=lambda p: str(p.attributes))
                    return data.aggregation_temporality, points
    raise AssertionError("no latency histogram in the batch")


def _shape(point: HistogramDataPoint) -> tuple[object, ...]:
    return (
        dict(point.attributes or {}),
        point.count,
        point.sum,
        list(point.bucket_counts),
        list(point.explicit_bounds),
        point.min,
        point.max,
    )


@pytest.mark.parametrize(
    "temporality", [AggregationTemporality.CUMULATIVE, AggregationTemporality.DELTA]
)
def test_an_exporter_is_sent_what_the_sdk_histogram_would_send(
    temporality: AggregationTemporality,
) -> None:
    ours_exporter, theirs_exporter = _Kept(temporality), _Kept(temporality)
    ours, registry = telemetry.prometheus_meter_provider(ours_exporter)
    theirs = MeterProvider(
        metric_readers=[
            PeriodicExportingMetricReader(theirs_exporter, export_interval_millis=math.inf)
        ],
        shutdown_on_exit=False,
    )
    telemetry.use(meter_provider=ours, registry=registry)
    try:
        sdk = _sdk_histogram(theirs)

        def record(values: Sequence[float], mode: str) -> None:
            for value in values:
                telemetry._state.latency.record(value, mode)
                sdk.record(value, {"mode": mode})

        record(VALUES, telemetry.LIVE)
        record(VALUES[:4], telemetry.REPLAY)
        ours.force_flush()
        theirs.force_flush()
        record((0.01, 0.02), telemetry.LIVE)  # the replay mode has nothing new
        ours.force_flush()
        theirs.force_flush()
        assert len(ours_exporter.batches) == len(theirs_exporter.batches) == 2
        for mine, sdks in zip(ours_exporter.batches, theirs_exporter.batches, strict=True):
            my_temporality, my_points = _points(mine)
            sdk_temporality, sdk_points = _points(sdks)
            assert my_temporality == sdk_temporality == temporality
            assert [_shape(p) for p in my_points] == [_shape(p) for p in sdk_points]
        second = _points(ours_exporter.batches[1])[1]
        if temporality is AggregationTemporality.DELTA:
            assert [p.count for p in second] == [2]  # only what came since
            first_time = _points(ours_exporter.batches[0])[1][0].time_unix_nano
            assert second[0].start_time_unix_nano == first_time
        else:
            assert [p.count for p in second] == [len(VALUES) + 2, 4]
    finally:
        theirs.shutdown()
        ours.shutdown()


def test_a_meter_provider_of_ones_own_gets_the_histogram_through_the_api() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    telemetry.use(meter_provider=provider)
    try:
        telemetry._state.latency.record(0.003, telemetry.LIVE)
        data = reader.get_metrics_data()
        assert data is not None
        temporality, points = _points(data)
        assert temporality is AggregationTemporality.CUMULATIVE
        assert [(dict(p.attributes or {}), p.count, p.sum) for p in points] == [
            ({"mode": "live"}, 1, 0.003)
        ]
    finally:
        telemetry.use()
        provider.shutdown()
