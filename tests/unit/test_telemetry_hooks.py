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
from tocsin.entry import Notice, decode
from tocsin.ids import encode_id, epoch_of
from tocsin.logs import redact_url

from support import Recorded, hex_id

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "observability.md"


TELEMETRY = telemetry.OtelTelemetry()
EPOCH = epoch_of("telemetry")


def _msg(headers: dict[str, str] | None, subject: str = "tocsin.user.alice") -> Msg:
    return Msg(_client=Client(), subject=subject, data=b'{"kind":"k"}', headers=headers)


def _notice(seq: int, stored_ns: int, trace: object | None = None) -> Notice:
    body = b'{"kind": "k", "subject_id": "s", "text": "t"}'
    notice = decode(EPOCH, seq, stored_ns, None, body)
    assert isinstance(notice, Notice)
    notice.trace = trace
    return notice


def _write(notice: Notice, mode: str, conn: str, user: str = "alice") -> None:
    TELEMETRY.written([(notice.seq, b"frame", notice)], mode, conn, user, time.time_ns())


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
    notice = _notice(7, stored_ns)
    notice.trace = TELEMETRY.routed(
        "tocsin.user.alice", _msg({"Traceparent": TRACEPARENT}), notice.id, streams=2
    )
    for conn in ("c1", "c2"):
        _write(notice, telemetry.LIVE, conn)
    (process,) = recorded.spans(telemetry.PROCESS_SPAN)
    assert process.kind is SpanKind.CONSUMER
    assert hex_id(process.context.trace_id, 32) == TRACE_ID
    assert process.parent is not None and hex_id(process.parent.span_id, 16) == PARENT_ID
    assert process.attributes is not None
    assert process.attributes["messaging.operation.type"] == "process"
    assert process.attributes["messaging.message.id"] == notice.id
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
    notice = _notice(5, time.time_ns() - 60_000_000_000)
    notice.trace = TELEMETRY.keep({"Nats-Sequence": "5", "traceparent": TRACEPARENT})
    _write(notice, telemetry.REPLAY, "c9", "bob")
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
    notice = _notice(1, time.time_ns())
    notice.trace = TELEMETRY.routed(
        "tocsin.user.alice", _msg({"traceparent": TRACEPARENT}), notice.id, 1
    )
    assert notice.trace is None
    assert TELEMETRY.keep({"traceparent": TRACEPARENT}) is None
    _write(notice, telemetry.LIVE, "c")
    assert untraced.sample("tocsin_delivery_latency_seconds_count", mode="live") == 1
    assert untraced.sample("tocsin_notifications_published_total") == 1


def test_only_notifications_are_counted_and_timed_as_deliveries(untraced: Recorded) -> None:
    notice = _notice(1, time.time_ns())
    TELEMETRY.written(
        [(0, b"event: state\n\n", None), (1, b"frame", notice)], telemetry.LIVE, "c", "s", 0
    )
    assert untraced.sample("tocsin_notifications_delivered_total", mode="live") == 1
    assert untraced.sample("tocsin_delivery_latency_seconds_count", mode="live") == 1


def test_the_default_telemetry_reports_nothing_and_costs_nothing() -> None:
    quiet = telemetry.NO_TELEMETRY
    assert quiet.routed("tocsin.user.alice", _msg({"traceparent": TRACEPARENT}), "ntf_1", 1) is None
    assert quiet.keep({"traceparent": TRACEPARENT}) is None
    quiet.written([(1, b"f", _notice(1, 0))], telemetry.LIVE, "c", "s", 0)


def test_connection_counters_and_reasons(untraced: Recorded) -> None:
    TELEMETRY.stream_opened()
    TELEMETRY.stream_opened()
    assert untraced.sample("tocsin_connections_open") == 2
    TELEMETRY.stream_closed("client_gone")
    TELEMETRY.evicted()
    TELEMETRY.slow_client_dropped()
    TELEMETRY.reset("cursor_too_old")
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
        self.invalid_messages = {"notification": 3}
        self.kept_notifications = 10


def test_nats_state_and_invalid_messages_are_read_at_collection(untraced: Recorded) -> None:
    runtime = _Runtime()
    telemetry.watch(runtime)
    assert untraced.sample("tocsin_nats_connected") == 1
    assert untraced.sample("tocsin_invalid_messages_total", what="notification") == 3
    assert untraced.sample("tocsin_replay_cache_notifications") == 10
    runtime.ready = False
    runtime.invalid_messages = {"notification": 3, "retraction": 1}
    runtime.kept_notifications = 0
    assert untraced.sample("tocsin_nats_connected") == 0
    assert untraced.sample("tocsin_invalid_messages_total", what="notification") == 3
    assert untraced.sample("tocsin_invalid_messages_total", what="retraction") == 1
    assert untraced.sample("tocsin_replay_cache_notifications") == 0


def test_trace_headers_picks_only_w3c_context() -> None:
    assert telemetry.trace_headers({"traceparent": TRACEPARENT, "x-other": "1"}) == {
        "traceparent": TRACEPARENT
    }
    assert telemetry.trace_headers({"x-other": "1"}) is None


def test_every_metric_and_span_name_is_documented(untraced: Recorded) -> None:
    runtime = _Runtime()
    telemetry.watch(runtime)
    TELEMETRY.stream_opened()
    TELEMETRY.stream_closed("client_gone")
    TELEMETRY.evicted()
    TELEMETRY.slow_client_dropped()
    TELEMETRY.reset("expired")
    TELEMETRY.replay(telemetry.MEMORY)
    TELEMETRY.received()
    with telemetry.producing("tocsin.user.a", None) as produced:
        produced.stored("e", 1)
    with pytest.raises(RuntimeError), telemetry.producing("tocsin.user.a", None):
        raise RuntimeError("NATS went away")
    notice = _notice(1, time.time_ns())
    notice.trace = TELEMETRY.routed("tocsin.user.alice", _msg(None), notice.id, 1)
    _write(notice, telemetry.LIVE, "c")
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
    notice = _notice(5, time.time_ns(), TELEMETRY.keep({"traceparent": unsampled}))
    _write(notice, telemetry.REPLAY, "c9")
    # Read once, found unsampled, and dropped: no span is even built for later writes.
    assert notice.trace is None
    assert recorded.spans(telemetry.DELIVER_SPAN) == []
    assert recorded.sample("tocsin_delivery_latency_seconds_count", mode="replay") == 1
