"""Telemetry end to end: traces through NATS to the SSE write, /metrics, console spans, logs."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import nats
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from tocsin import telemetry
from tocsin.embedded import EmbeddedNats

from support import (
    SECRET,
    Recorded,
    Subscriber,
    Tocsin,
    TocsinFactory,
    auth,
    hex_id,
    in_process,
    publish_http,
    publisher_token,
    sample_value,
    user_token,
    wait_for,
)

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PRODUCER_SPAN_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PRODUCER_SPAN_ID}-01"
BODY = json.dumps({"kind": "comment.created", "subject_id": "doc_1", "text": "hi"}).encode()


def _attributes(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


async def test_native_traceparent_continues_through_consumer_and_delivery(
    recorded: Recorded, nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    async with in_process(nats_server.url, tmp_path) as (url, _):
        sub = Subscriber(url, user_token("alice")).start()
        nc = await nats.connect(nats_server.url)
        try:
            await sub.connected()
            await nc.jetstream().publish(
                "tocsin.user.alice", BODY, stream="TOCSIN", headers={"traceparent": TRACEPARENT}
            )
            await wait_for(lambda: len(sub.ids) == 1, what="the live notification")
            await wait_for(
                lambda: bool(recorded.spans(telemetry.DELIVER_SPAN)), what="the delivery span"
            )
        finally:
            await nc.close()
            await sub.close()
    (process,) = recorded.spans(telemetry.PROCESS_SPAN)
    (deliver,) = recorded.spans(telemetry.DELIVER_SPAN)
    assert {hex_id(s.context.trace_id, 32) for s in (process, deliver)} == {TRACE_ID}
    assert process.kind is SpanKind.CONSUMER
    assert process.parent is not None and hex_id(process.parent.span_id, 16) == PRODUCER_SPAN_ID
    assert deliver.parent is not None and deliver.parent.span_id == process.context.span_id
    assert _attributes(process) == {
        "messaging.system": "nats",
        "messaging.destination.name": "tocsin.user.alice",
        "messaging.destination.template": "tocsin.user.{user_id}",
        "messaging.message.id": sub.ids[0],
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.message.body.size": len(BODY),
        "tocsin.streams.local": 1,
    }
    delivered = _attributes(deliver)
    assert delivered["tocsin.delivery.mode"] == "live"
    assert delivered["messaging.message.id"] == sub.ids[0]
    assert isinstance(delivered["tocsin.connection.id"], str)
    assert recorded.sample("tocsin_delivery_latency_seconds_count", mode="live") == 1
    assert recorded.sample("tocsin_notifications_delivered_total", mode="live") == 1


async def test_http_publish_is_traced_from_the_request_to_the_write(
    recorded: Recorded, nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    async with in_process(nats_server.url, tmp_path) as (url, _):
        sub = Subscriber(url, user_token("bob")).start()
        try:
            await sub.connected()
            async with httpx.AsyncClient(base_url=url, timeout=10) as client:
                response = await client.post(
                    "/notifications",
                    json={"recipients": ["bob"], "kind": "k", "subject_id": "s", "text": "t"},
                    headers={**auth(publisher_token()), "traceparent": TRACEPARENT},
                )
            assert response.status_code == 202, response.text
            await wait_for(
                lambda: bool(recorded.spans(telemetry.DELIVER_SPAN)), what="the delivery span"
            )
        finally:
            await sub.close()
    (producer,) = recorded.spans(telemetry.PUBLISH_SPAN)
    (process,) = recorded.spans(telemetry.PROCESS_SPAN)
    (deliver,) = recorded.spans(telemetry.DELIVER_SPAN)
    assert producer.kind is SpanKind.PRODUCER
    assert producer.parent is not None and hex_id(producer.parent.span_id, 16) == PRODUCER_SPAN_ID
    assert process.parent is not None and process.parent.span_id == producer.context.span_id
    assert deliver.parent is not None and deliver.parent.span_id == process.context.span_id
    assert {hex_id(s.context.trace_id, 32) for s in (producer, process, deliver)} == {TRACE_ID}
    assert _attributes(producer)["messaging.message.id"] == response.json()["ids"][0]
    assert recorded.sample("tocsin_notifications_published_total") == 1


async def test_replayed_delivery_continues_the_producers_trace(
    recorded: Recorded, nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    async with in_process(nats_server.url, tmp_path) as (url, _):
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            (seen,) = await publish_http(client, ["carol"], "first")
        nc = await nats.connect(nats_server.url)
        try:
            await nc.jetstream().publish(
                "tocsin.user.carol", BODY, stream="TOCSIN", headers={"traceparent": TRACEPARENT}
            )
        finally:
            await nc.close()
        sub = Subscriber(url, user_token("carol"), last_event_id=seen).start()
        try:
            await wait_for(lambda: len(sub.ids) == 1, what="the replayed notification")
            await wait_for(
                lambda: bool(recorded.spans(telemetry.DELIVER_SPAN)), what="the delivery span"
            )
        finally:
            await sub.close()
    (deliver,) = recorded.spans(telemetry.DELIVER_SPAN)
    assert hex_id(deliver.context.trace_id, 32) == TRACE_ID
    assert deliver.parent is not None and hex_id(deliver.parent.span_id, 16) == PRODUCER_SPAN_ID
    assert _attributes(deliver)["tocsin.delivery.mode"] == "replay"
    assert _attributes(deliver)["messaging.message.id"] == sub.ids[0]
    assert not recorded.spans(telemetry.PROCESS_SPAN)
    assert recorded.sample("tocsin_delivery_latency_seconds_count", mode="replay") == 1
    assert recorded.sample("tocsin_notifications_delivered_total", mode="replay") == 1


async def _metrics(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return response.text


async def test_metrics_of_a_served_process_parse_and_move(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    tocsin = tocsin_factory(nats_server.url, "--heartbeat", "1s", "--max-conns-per-user", "1")
    async with httpx.AsyncClient(base_url=tocsin.url, timeout=10) as client:
        before = await _metrics(client)
        assert sample_value(before, "tocsin_nats_connected") == 1
        assert not sample_value(before, "tocsin_notifications_published_total")
        first = Subscriber(tocsin.url, user_token("dave"), reconnect=False).start()
        second = Subscriber(tocsin.url, user_token("dave"), reconnect=False)
        nc = await nats.connect(nats_server.url)
        try:
            await first.connected()
            ids = await publish_http(client, ["dave"], "one")
            await wait_for(lambda: first.ids == ids, what="the live notification")
            await nc.jetstream().publish("tocsin.user.dave", b"not json", stream="TOCSIN")
            second.start()
            await second.connected()
            await wait_for(lambda: any(e.event == "evicted" for e in first.events))

            async def moved() -> str:
                text = await _metrics(client)
                if sample_value(text, "tocsin_invalid_messages_total") != 1:
                    return ""
                if sample_value(text, "tocsin_connections_closed_total", reason="evicted") != 1:
                    return ""
                return text

            text = ""
            for _ in range(100):
                if text := await moved():
                    break
                await asyncio.sleep(0.05)
            assert text, "counters for the invalid message and the eviction never moved"
        finally:
            await nc.close()
            await first.close()
            await second.close()
    assert sample_value(text, "tocsin_notifications_published_total") == 1
    assert sample_value(text, "tocsin_notifications_received_total") == 1
    assert sample_value(text, "tocsin_notifications_routed_total") == 1
    assert sample_value(text, "tocsin_notifications_delivered_total", mode="live") == 1
    assert sample_value(text, "tocsin_delivery_latency_seconds_count", mode="live") == 1
    assert sample_value(text, "tocsin_connections_opened_total") == 2
    assert sample_value(text, "tocsin_connections_open") == 1
    assert sample_value(text, "tocsin_evictions_total") == 1
    assert sample_value(text, "process_resident_memory_bytes") is not None


async def test_console_exporter_prints_the_spans_of_a_native_publish(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "tocsin-console-test")
    tocsin = tocsin_factory(nats_server.url, "--heartbeat", "1s")
    sub = Subscriber(tocsin.url, user_token("erin")).start()
    nc = await nats.connect(nats_server.url)
    try:
        await sub.connected()
        await nc.jetstream().publish(
            "tocsin.user.erin", BODY, stream="TOCSIN", headers={"traceparent": TRACEPARENT}
        )
        await wait_for(lambda: len(sub.ids) == 1, what="the live notification")
        await wait_for(
            lambda: tocsin.log().count(f"0x{TRACE_ID}") >= 2, what="both spans on the console"
        )
    finally:
        await nc.close()
        await sub.close()
    output = tocsin.log()
    assert telemetry.PROCESS_SPAN in output
    assert telemetry.DELIVER_SPAN in output
    assert "tocsin-console-test" in output


class OtlpReceiver:
    """An OTLP/HTTP endpoint on loopback that keeps what it is sent, decoded."""

    def __init__(self) -> None:
        self.span_names: list[tuple[str, str]] = []
        self.metric_names: set[str] = set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path == "/v1/traces":
                    traces = ExportTraceServiceRequest.FromString(body)
                    for resource in traces.resource_spans:
                        for scope in resource.scope_spans:
                            receiver.span_names += [(s.trace_id.hex(), s.name) for s in scope.spans]
                elif self.path == "/v1/metrics":
                    metrics = ExportMetricsServiceRequest.FromString(body)
                    for resource in metrics.resource_metrics:
                        for scope in resource.scope_metrics:
                            receiver.metric_names |= {m.name for m in scope.metrics}
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> OtlpReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


async def test_otlp_export_carries_the_trace_and_the_metrics(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    with OtlpReceiver() as receiver:
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
        monkeypatch.setenv("OTEL_METRICS_EXPORTER", "otlp")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
        monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "300")
        tocsin = tocsin_factory(nats_server.url, "--heartbeat", "1s")
        sub = Subscriber(tocsin.url, user_token("ivan")).start()
        nc = await nats.connect(nats_server.url)
        try:
            await sub.connected()
            await nc.jetstream().publish(
                "tocsin.user.ivan", BODY, stream="TOCSIN", headers={"traceparent": TRACEPARENT}
            )
            await wait_for(lambda: len(sub.ids) == 1, what="the live notification")
            await wait_for(
                lambda: (TRACE_ID, telemetry.DELIVER_SPAN) in receiver.span_names,
                what="the delivery span at the OTLP endpoint",
            )
            await wait_for(
                lambda: "tocsin.delivery.latency" in receiver.metric_names,
                what="the latency histogram at the OTLP endpoint",
            )
        finally:
            await nc.close()
            await sub.close()
            tocsin.stop()
    assert (TRACE_ID, telemetry.PROCESS_SPAN) in receiver.span_names
    assert {"tocsin.notifications.delivered", "tocsin.nats.connected"} <= receiver.metric_names


async def test_without_otel_settings_no_spans_are_printed(
    tocsin: Tocsin, http: httpx.AsyncClient
) -> None:
    sub = Subscriber(tocsin.url, user_token("frank")).start()
    try:
        await sub.connected()
        ids = await publish_http(http, ["frank"])
        await wait_for(lambda: sub.ids == ids, what="the live notification")
    finally:
        await sub.close()
    await wait_for(lambda: '"msg": "stream close"' in tocsin.log(), what="the close log line")
    assert telemetry.PROCESS_SPAN not in tocsin.log()
    assert "trace_id" not in tocsin.log()


def _log_lines(tocsin: Tocsin) -> list[dict[str, object]]:
    lines = []
    for line in tocsin.log().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


async def test_stream_log_lines_carry_who_how_long_and_why(
    tocsin: Tocsin, http: httpx.AsyncClient
) -> None:
    sub = Subscriber(tocsin.url, user_token("gina"), reconnect=False).start()
    try:
        await sub.connected()
        ids = await publish_http(http, ["gina"], "one")
        await wait_for(lambda: sub.ids == ids, what="the live notification")
    finally:
        await sub.close()

    def closed() -> list[dict[str, object]]:
        return [line for line in _log_lines(tocsin) if line.get("msg") == "stream close"]

    await wait_for(lambda: bool(closed()), what="the close log line")
    (opened,) = [line for line in _log_lines(tocsin) if line.get("msg") == "stream open"]
    (close,) = closed()
    assert opened["user"] == close["user"] == "gina"
    assert opened["conn"] == close["conn"]
    assert tocsin.process is not None
    assert close["process"] == close["pid"] == tocsin.process.pid
    assert close["events_sent"] == 1
    assert close["reason"] == "client_gone"
    assert isinstance(close["duration_s"], float | int)


async def test_tokens_never_appear_in_the_log(tocsin: Tocsin, http: httpx.AsyncClient) -> None:
    good = user_token("hank")
    short = user_token("hank", ttl=60)
    long_in_query = user_token("hank", ttl=3600)
    expired = user_token("hank", ttl=-120)
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    publisher = publisher_token()
    for token in (expired, forged, "not-a-jwt-at-all-0123456789"):
        response = await http.get("/notifications", headers=auth(token))
        assert response.status_code == 401
        response = await http.get("/notifications/stream", params={"token": token})
        assert response.status_code == 401
    response = await http.get("/notifications/stream", params={"token": long_in_query})
    assert response.status_code == 401
    response = await http.post("/notifications", json={}, headers=auth(good))
    assert response.status_code == 403
    response = await http.post(
        "/notifications",
        json={"recipients": ["hank"], "kind": "k", "subject_id": "s", "text": "t"},
        headers=auth(publisher),
    )
    assert response.status_code == 202
    assert (await http.get("/notifications", headers=auth(good))).status_code == 200
    for sub in (
        Subscriber(tocsin.url, good, reconnect=False),
        Subscriber(tocsin.url, short, query=True, reconnect=False),
    ):
        sub.start()
        try:
            await sub.connected()
        finally:
            await sub.close()
    await wait_for(
        lambda: tocsin.log().count('"msg": "stream close"') == 2, what="both close log lines"
    )
    log = tocsin.log()
    for token in (good, short, long_in_query, expired, forged, publisher):
        signature = token.rsplit(".", 1)[1]
        assert token not in log
        assert signature not in log
    assert SECRET not in log


async def test_nats_credentials_in_the_url_never_reach_the_log(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    secret = "nats-token-5f1c9a0e"
    url = nats_server.url.replace("nats://", f"nats://{secret}@")
    tocsin = tocsin_factory(url, "--heartbeat", "1s")
    await wait_for(lambda: '"msg": "listening"' in tocsin.log(), what="the listening log line")
    assert secret not in tocsin.log()
