"""Telemetry hooks without I/O: spans, trace context in headers, metrics and their names."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import yaml
from nats.aio.client import Client
from nats.aio.msg import Msg
from opentelemetry.trace import SpanKind
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tocsin import telemetry
from tocsin.ids import encode_id
from tocsin.logs import redact_url
from tocsin.store import StoredMessage

from support import Recorded, hex_id

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "observability.md"


def _msg(headers: dict[str, str] | None, subject: str = "tocsin.user.alice") -> Msg:
    return Msg(_client=Client(), subject=subject, data=b'{"kind":"k"}', headers=headers)


def test_producer_span_injects_w3c_context_into_headers(recorded: Recorded) -> None:
    with telemetry.producing("tocsin.user.alice", {"Nats-Msg-Id": "k:0:alice"}) as produced:
        produced.stored("epoch1", 7)
    (span,) = recorded.spans(telemetry.PUBLISH_SPAN)
    assert span.kind is SpanKind.PRODUCER
    assert produced.headers is not None
    assert produced.headers["Nats-Msg-Id"] == "k:0:alice"
    _, trace_id, span_id, _ = produced.headers["traceparent"].split("-")
    assert trace_id == hex_id(span.context.trace_id, 32)
    assert span_id == hex_id(span.context.span_id, 16)
    assert span.attributes is not None
    assert dict(span.attributes) == {
        "messaging.system": "nats",
        "messaging.destination.template": "tocsin.user.{user_id}",
        "messaging.destination.name": "tocsin.user.alice",
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        "messaging.message.id": encode_id("epoch1", 7),
    }
    assert recorded.sample("tocsin_notifications_published_total") == 1


def test_producer_continues_a_traceparent_given_in_the_headers(recorded: Recorded) -> None:
    with telemetry.producing("tocsin.user.alice", {"traceparent": TRACEPARENT}) as produced:
        produced.stored("e", 1)
    (span,) = recorded.spans()
    assert hex_id(span.context.trace_id, 32) == TRACE_ID
    assert span.parent is not None
    assert hex_id(span.parent.span_id, 16) == PARENT_ID
    assert produced.headers is not None
    assert produced.headers["traceparent"] != TRACEPARENT
    assert TRACE_ID in produced.headers["traceparent"]


def test_failed_publish_marks_the_span_and_counts_an_error(recorded: Recorded) -> None:
    with (
        pytest.raises(RuntimeError),
        telemetry.producing("tocsin.user.alice", None),
    ):
        raise RuntimeError("NATS went away")
    (span,) = recorded.spans()
    assert not span.status.is_ok
    assert recorded.sample("tocsin_notifications_publish_errors_total") == 1
    assert recorded.sample("tocsin_notifications_published_total") in (None, 0)


def test_a_batch_is_one_send_span_over_create_spans(recorded: Recorded) -> None:
    with telemetry.publishing_batch(2):
        for user in ("alice", "bob"):
            with telemetry.producing(f"tocsin.user.{user}", None) as produced:
                produced.stored("e", 1)
    (batch,) = recorded.spans(telemetry.PUBLISH_SPAN)
    creates = recorded.spans(telemetry.CREATE_SPAN)
    assert batch.kind is SpanKind.CLIENT
    assert batch.attributes is not None
    assert batch.attributes["messaging.batch.message_count"] == 2
    assert len(creates) == 2
    for span in creates:
        assert span.kind is SpanKind.PRODUCER
        assert span.parent is not None and span.parent.span_id == batch.context.span_id
        assert span.attributes is not None
        assert span.attributes["messaging.operation.type"] == "create"


def test_a_batch_of_an_unsampled_trace_builds_no_create_spans(recorded: Recorded) -> None:
    unsampled = f"00-{TRACE_ID}-{PARENT_ID}-00"
    with telemetry.publishing_batch(2):
        for user in ("alice", "bob"):
            with telemetry.producing(f"tocsin.user.{user}", {"traceparent": unsampled}) as made:
                made.stored("e", 1)
            assert made.span is None
            # The consumer side still continues the caller's trace, and its decision.
            assert made.headers is not None and made.headers["traceparent"] == unsampled
    assert recorded.spans(telemetry.CREATE_SPAN) == []
    assert recorded.sample("tocsin_notifications_published_total") == 2


def test_an_idempotent_batch_keeps_its_create_spans_under_the_batch(recorded: Recorded) -> None:
    with (
        telemetry.publishing_batch(2),
        telemetry.producing("tocsin.user.a", {"Nats-Msg-Id": "k:0:a"}) as produced,
    ):
        produced.stored("e", 1)
    (batch,) = recorded.spans(telemetry.PUBLISH_SPAN)
    (create,) = recorded.spans(telemetry.CREATE_SPAN)
    assert create.parent is not None and create.parent.span_id == batch.context.span_id


def test_one_recipient_has_no_batch_span(recorded: Recorded) -> None:
    with telemetry.publishing_batch(1), telemetry.producing("tocsin.user.a", None):
        pass
    assert [s.name for s in recorded.spans()] == [telemetry.PUBLISH_SPAN]


async def test_consumer_span_is_a_child_of_the_producer_and_parents_each_write(
    recorded: Recorded,
) -> None:
    stored_ns = time.time_ns() - 3_000_000
    frame = telemetry.routed(
        b"id: x\n\n", _msg({"Traceparent": TRACEPARENT}), "ntf_x", stored_ns, streams=2
    )
    assert frame == b"id: x\n\n"
    for conn in ("c1", "c2"):
        delivery = telemetry.delivery([frame], telemetry.LIVE, conn)
        delivery.written()
    (process,) = recorded.spans(telemetry.PROCESS_SPAN)
    assert process.kind is SpanKind.CONSUMER
    assert hex_id(process.context.trace_id, 32) == TRACE_ID
    assert process.parent is not None and hex_id(process.parent.span_id, 16) == PARENT_ID
    assert process.attributes is not None
    assert process.attributes["messaging.operation.type"] == "process"
    assert process.attributes["messaging.message.id"] == "ntf_x"
    assert process.attributes["tocsin.streams.local"] == 2
    writes = recorded.spans(telemetry.DELIVER_SPAN)
    assert len(writes) == 2
    for span in writes:
        assert span.parent is not None and span.parent.span_id == process.context.span_id
        assert span.attributes is not None
        assert span.attributes["tocsin.delivery.mode"] == "live"
        assert float(str(span.attributes["tocsin.delivery.latency"])) >= 0.003
    assert {s.attributes["tocsin.connection.id"] for s in writes if s.attributes} == {"c1", "c2"}
    assert recorded.sample("tocsin_delivery_latency_seconds_count", mode="live") == 2
    assert recorded.sample("tocsin_notifications_delivered_total", mode="live") == 2
    assert recorded.sample("tocsin_notifications_routed_total") == 1


def test_replayed_frames_continue_the_stored_producer_context(recorded: Recorded) -> None:
    stored = StoredMessage(
        seq=5,
        subject="tocsin.user.bob",
        time_ns=time.time_ns() - 60_000_000_000,
        data=b"{}",
        headers={"Nats-Sequence": "5", "traceparent": TRACEPARENT},
    )
    frame = telemetry.replay_frame(
        b"frame", stored.subject, stored.headers, "ntf_5", stored.time_ns
    )
    telemetry.delivery([frame], telemetry.REPLAY, "c9").written()
    (span,) = recorded.spans(telemetry.DELIVER_SPAN)
    assert span.parent is not None and hex_id(span.parent.span_id, 16) == PARENT_ID
    assert span.attributes is not None
    assert span.attributes["tocsin.delivery.mode"] == "replay"
    assert span.attributes["messaging.destination.name"] == "tocsin.user.bob"
    assert recorded.sample("tocsin_delivery_latency_seconds_count", mode="replay") == 1
    # A minute-old notification lands above the one-minute bucket's lower neighbours.
    assert recorded.sample("tocsin_delivery_latency_seconds_bucket", mode="replay", le="30.0") == 0


def test_without_tracing_no_spans_and_no_injection_but_metrics(untraced: Recorded) -> None:
    with telemetry.producing("tocsin.user.a", None) as produced:
        produced.stored("e", 1)
    assert produced.headers is None
    frame = telemetry.routed(b"f", _msg({"traceparent": TRACEPARENT}), "ntf_1", time.time_ns(), 1)
    assert isinstance(frame, telemetry.TracedFrame) and frame.context() is None
    telemetry.delivery([frame], telemetry.LIVE, "c").written()
    assert untraced.sample("tocsin_delivery_latency_seconds_count", mode="live") == 1
    assert untraced.sample("tocsin_notifications_published_total") == 1


def test_connection_counters_and_reasons(untraced: Recorded) -> None:
    telemetry.stream_opened()
    telemetry.stream_opened()
    assert untraced.sample("tocsin_connections_open") == 2
    telemetry.stream_closed("client_gone")
    telemetry.evicted()
    telemetry.slow_client_dropped()
    telemetry.reset("cursor_too_old")
    assert untraced.sample("tocsin_connections_open") == 1
    assert untraced.sample("tocsin_connections_opened_total") == 2
    assert untraced.sample("tocsin_connections_closed_total", reason="client_gone") == 1
    assert untraced.sample("tocsin_evictions_total") == 1
    assert untraced.sample("tocsin_slow_client_drops_total") == 1
    assert untraced.sample("tocsin_resets_total", reason="cursor_too_old") == 1


class _Runtime:
    """A NATS runtime's observable state, as the metrics read it."""

    def __init__(self) -> None:
        self.ready = True
        self.invalid_messages = 3
        self.kept_notifications = 10


def test_nats_state_and_invalid_messages_are_read_at_collection(untraced: Recorded) -> None:
    runtime = _Runtime()
    telemetry.watch(runtime)
    assert untraced.sample("tocsin_nats_connected") == 1
    assert untraced.sample("tocsin_invalid_messages_total") == 3
    assert untraced.sample("tocsin_replay_cache_notifications") == 10
    runtime.ready = False
    runtime.invalid_messages = 4
    runtime.kept_notifications = 0
    assert untraced.sample("tocsin_nats_connected") == 0
    assert untraced.sample("tocsin_invalid_messages_total") == 4
    assert untraced.sample("tocsin_replay_cache_notifications") == 0


def test_trace_headers_picks_only_w3c_context() -> None:
    assert telemetry.trace_headers({"traceparent": TRACEPARENT, "x-other": "1"}) == {
        "traceparent": TRACEPARENT
    }
    assert telemetry.trace_headers({"x-other": "1"}) is None


def test_every_metric_and_span_name_is_documented(untraced: Recorded) -> None:
    runtime = _Runtime()
    telemetry.watch(runtime)
    telemetry.stream_opened()
    telemetry.stream_closed("client_gone")
    telemetry.evicted()
    telemetry.slow_client_dropped()
    telemetry.reset("expired")
    telemetry.replay(telemetry.MEMORY)
    telemetry.received()
    with telemetry.producing("tocsin.user.a", None) as produced:
        produced.stored("e", 1)
    with pytest.raises(RuntimeError), telemetry.producing("tocsin.user.a", None):
        raise RuntimeError("NATS went away")
    frame = telemetry.routed(b"f", _msg(None), "ntf_1", time.time_ns(), 1)
    telemetry.delivery([frame], telemetry.LIVE, "c").written()
    text = generate_latest(untraced.registry).decode()
    families = text_string_to_metric_families(text)
    names = {f.name + ("_total" if f.type == "counter" else "") for f in families} - {"target_info"}
    docs = DOCS.read_text()
    documented = set(re.findall(r"`(tocsin_[a-z_]+)`", docs))
    assert len(names) == 16, names
    assert names <= documented, names - documented
    for span in (
        telemetry.PUBLISH_SPAN,
        telemetry.CREATE_SPAN,
        telemetry.PROCESS_SPAN,
        telemetry.DELIVER_SPAN,
    ):
        assert f"`{span}`" in docs


def _referenced_metrics(expressions: list[str]) -> set[str]:
    names = set()
    for expr in expressions:
        for name in re.findall(r"\b(tocsin_[a-z_]+)", expr):
            names.add(re.sub(r"_(bucket|count|sum)$", "", name))
    return names


def test_alerts_and_dashboard_use_only_documented_metrics() -> None:
    documented = set(re.findall(r"`(tocsin_[a-z_]+)`", DOCS.read_text()))
    ops = DOCS.parents[1] / "ops"
    rules = yaml.safe_load((ops / "prometheus" / "alerts.yaml").read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    for rule in alerts:
        assert {"alert", "expr", "labels", "annotations"} <= rule.keys(), rule
        assert rule["labels"]["severity"] in ("page", "warning")
    dashboard = json.loads((ops / "grafana" / "tocsin-dashboard.json").read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    queries = [t["expr"] for p in panels for t in p["targets"]]
    assert all(p["description"] for p in panels)
    used = _referenced_metrics([r["expr"] for r in alerts] + queries)
    assert used <= documented, used - documented
    alerted = _referenced_metrics([r["expr"] for r in alerts])
    assert {
        "tocsin_nats_connected",
        "tocsin_delivery_latency_seconds",
        "tocsin_slow_client_drops_total",
        "tocsin_invalid_messages_total",
        "tocsin_notifications_delivered_total",
    } <= alerted


def test_redact_url_hides_nats_user_info() -> None:
    assert redact_url("nats://user:pa55@n1:4222") == "nats://***@n1:4222"
    assert redact_url("nats://s3cr3t@n1:4222") == "nats://***@n1:4222"
    assert redact_url("nats://n1:4222") == "nats://n1:4222"
    assert redact_url("tls://n1:4222/path@x") == "tls://n1:4222/path@x"


def test_writes_of_an_unsampled_trace_make_no_spans(recorded: Recorded) -> None:
    unsampled = f"00-{TRACE_ID}-{PARENT_ID}-00"
    frame = telemetry.replay_frame(
        b"frame", "tocsin.user.bob", {"traceparent": unsampled}, "ntf_5", time.time_ns()
    )
    # No context kept: no span is even built for each write of it.
    assert isinstance(frame, telemetry.TracedFrame) and frame.context() is None
    telemetry.delivery([frame], telemetry.REPLAY, "c9").written()
    assert recorded.spans(telemetry.DELIVER_SPAN) == []
    assert recorded.sample("tocsin_delivery_latency_seconds_count", mode="replay") == 1
