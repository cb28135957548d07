"""Traces and metrics: what tocsin tells an SRE, set up from the standard `OTEL_*` variables.

A notification's trace: a PRODUCER span where tocsin publishes it (its W3C context
travels in the NATS headers), one CONSUMER span where a process's live feed hands
it to that process's streams, and a short span per SSE write (live or replay).
Metrics are always kept and served as Prometheus text; OTLP export is opt-in.
The rest of the package calls the hooks here; they are cheap no-ops for tracing
when no tracer provider is configured.
"""

from __future__ import annotations

import atexit
import logging
import os
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Protocol

from opentelemetry import metrics, propagate, trace
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricReader,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    generate_latest,
)

from . import latency
from .entry import Notice, Stored
from .ids import encode_id
from .model import SUBJECT_PREFIX

if TYPE_CHECKING:
    from nats.aio.msg import Msg

log = logging.getLogger("tocsin.telemetry")

LIVE = "live"
MEMORY = "memory"
STORE = "store"
REPLAY = "replay"
SUBJECT_TEMPLATE = "tocsin.user.{user_id}"
PUBLISH_SPAN = "publish " + SUBJECT_TEMPLATE
CREATE_SPAN = "create " + SUBJECT_TEMPLATE
PROCESS_SPAN = "process " + SUBJECT_TEMPLATE
DELIVER_SPAN = "deliver " + SUBJECT_TEMPLATE
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Live delivery is expected in milliseconds; the long tail catches replays, whose
# "latency" is how old the notification was when the reconnecting client got it.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    3600.0,
)

_SCOPE = "tocsin"
_MESSAGING: dict[str, AttributeValue] = {
    "messaging.system": "nats",
    "messaging.destination.template": SUBJECT_TEMPLATE,
}
_MODE_ATTRIBUTES = {LIVE: {"mode": LIVE}, REPLAY: {"mode": REPLAY}}
_TRACE_HEADERS = ("traceparent", "tracestate")
_in_batch: ContextVar[bool] = ContextVar("tocsin_publish_batch", default=False)


class Watched(Protocol):
    """What the metrics read from the process's NATS runtime when they are collected."""

    @property
    def ready(self) -> bool:
        """Connected to NATS with the stream set up."""
        ...

    @property
    def invalid_messages(self) -> dict[str, int]:
        """Messages the live feed skipped as invalid so far, by what each was meant to be
        (`notification`, `retraction`)."""
        ...

    @property
    def kept_notifications(self) -> int:
        """Notifications kept in memory to answer resumes (`--replay-cache`)."""
        ...


class _HeaderGetter(Getter[Mapping[str, str]]):
    """Reads trace headers from NATS headers, whose names a producer may capitalise."""

    def get(self, carrier: Mapping[str, str], key: str) -> list[str] | None:
        value = carrier.get(key)
        if value is None:
            lowered = key.lower()
            value = next((v for k, v in carrier.items() if k.lower() == lowered), None)
        return None if value is None else [value]

    def keys(self, carrier: Mapping[str, str]) -> list[str]:
        return list(carrier)


_GETTER = _HeaderGetter()


_watched: weakref.ref[Watched] | None = None


class Counts:
    """Running totals as plain integers, read by observable instruments at each collection.

    A synchronous OpenTelemetry `add` costs microseconds; these hooks run per
    notification and per write, where an integer increment costs nanoseconds.
    """

    __slots__ = (
        "closed",
        "delivered",
        "evictions",
        "open",
        "opened",
        "publish_errors",
        "published",
        "received",
        "replays",
        "resets",
        "routed",
        "slow_client_drops",
    )

    def __init__(self) -> None:
        self.published = 0
        self.publish_errors = 0
        self.received = 0
        self.routed = 0
        self.delivered = {LIVE: 0, REPLAY: 0}
        self.resets: dict[str, int] = {}
        self.replays: dict[str, int] = {}
        self.evictions = 0
        self.slow_client_drops = 0
        self.opened = 0
        self.closed: dict[str, int] = {}
        self.open = 0


_Callback = Callable[[CallbackOptions], Iterable[Observation]]


def _of_runtime(read: Callable[[Watched], int]) -> _Callback:
    """Observe what `read` says of the watched runtime (nothing before one is watched)."""

    def observe(_options: CallbackOptions) -> Iterable[Observation]:
        runtime = _watched() if _watched is not None else None
        return [] if runtime is None else [Observation(read(runtime))]

    return observe


def _of_runtime_by(label: str, read: Callable[[Watched], dict[str, int]]) -> _Callback:
    """Observe what `read` says of the watched runtime, one sample per `label` value."""

    def observe(_options: CallbackOptions) -> Iterable[Observation]:
        runtime = _watched() if _watched is not None else None
        counts = {} if runtime is None else dict(read(runtime))
        return [Observation(v, {label: k}) for k, v in counts.items()]

    return observe


def _total(read: Callable[[], int]) -> _Callback:
    return lambda _options: [Observation(read())]


def _by(label: str, read: Callable[[], dict[str, int]]) -> _Callback:
    # dict() copies in one step, so a key added meanwhile by the event loop cannot
    # break the iteration of a collecting thread.
    return lambda _options: [Observation(v, {label: k}) for k, v in dict(read()).items()]


def _instruments(meter: metrics.Meter, counts: Counts) -> None:
    """Create every metric tocsin reports from its counts (the latency histogram aside)."""
    notification, connection = "{notification}", "{connection}"
    observed: list[tuple[str, str, str, _Callback]] = [
        (
            "tocsin.notifications.published",
            notification,
            "Notifications this process stored for HTTP, CLI or Python producers",
            _total(lambda: counts.published),
        ),
        (
            "tocsin.notifications.publish_errors",
            notification,
            "Notifications this process failed to store (NATS unavailable)",
            _total(lambda: counts.publish_errors),
        ),
        (
            "tocsin.notifications.received",
            notification,
            "Valid notifications this process's live feed received, from any producer, for "
            "the users it follows",
            _total(lambda: counts.received),
        ),
        (
            "tocsin.notifications.routed",
            notification,
            "Live notifications handed to at least one stream open on this process",
            _total(lambda: counts.routed),
        ),
        (
            "tocsin.notifications.delivered",
            notification,
            "Notification frames written to SSE streams, by mode (live or replay)",
            _by("mode", lambda: counts.delivered),
        ),
        (
            "tocsin.replays",
            "{connection}",
            "Resumed streams, by where their backlog was read: memory (the user's timeline "
            "was in this process's memory) or store",
            _by("source", lambda: counts.replays),
        ),
        (
            "tocsin.resets",
            "{reset}",
            "Streams that had to send a reset event, by reason",
            _by("reason", lambda: counts.resets),
        ),
        (
            "tocsin.evictions",
            connection,
            "Streams evicted because their user opened more than the per-user cap",
            _total(lambda: counts.evictions),
        ),
        (
            "tocsin.slow_client_drops",
            connection,
            "Streams ended because the client read too slowly (mailbox full)",
            _total(lambda: counts.slow_client_drops),
        ),
        (
            "tocsin.connections.opened",
            connection,
            "SSE streams opened",
            _total(lambda: counts.opened),
        ),
        (
            "tocsin.connections.closed",
            connection,
            "SSE streams closed, by reason",
            _by("reason", lambda: counts.closed),
        ),
        (
            "tocsin.invalid_messages",
            "{message}",
            "Messages on the stream that failed validation and were skipped, by what each was "
            "meant to be (what: notification, retraction)",
            _of_runtime_by("what", lambda runtime: runtime.invalid_messages),
        ),
    ]
    for name, unit, description, callback in observed:
        meter.create_observable_counter(
            name, callbacks=[callback], unit=unit, description=description
        )
    meter.create_observable_up_down_counter(
        "tocsin.connections.open",
        callbacks=[_total(lambda: counts.open)],
        unit=connection,
        description="SSE streams open now",
    )
    meter.create_observable_gauge(
        "tocsin.nats.connected",
        callbacks=[_of_runtime(lambda runtime: 1 if runtime.ready else 0)],
        description="1 while this process is connected to NATS with the stream set up, else 0",
    )
    meter.create_observable_gauge(
        "tocsin.replay_cache.notifications",
        callbacks=[_of_runtime(lambda runtime: runtime.kept_notifications)],
        unit=notification,
        description="Stored messages this process keeps in memory, in the timelines of the "
        "users it holds and, up to --replay-cache, of those it held recently",
    )


class Latency(Protocol):
    """Where the delivery latencies go."""

    def record(self, seconds: float, mode: str) -> None:
        """One notification written `seconds` after it was stored, live or in a replay."""
        ...


class _SdkLatency:
    """The latency histogram through the OpenTelemetry API, for a meter provider tocsin
    did not make (a service embedding tocsin with its own)."""

    def __init__(self, meter: metrics.Meter) -> None:
        self._histogram = meter.create_histogram(
            latency.NAME,
            unit=latency.UNIT,
            description=latency.DESCRIPTION,
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        )

    def record(self, seconds: float, mode: str) -> None:
        self._histogram.record(seconds, _MODE_ATTRIBUTES[mode])


class _State:
    """The providers and instruments the hooks record into."""

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None,
        meter_provider: metrics.MeterProvider | None,
        registry: CollectorRegistry,
    ) -> None:
        self.tracer_provider = tracer_provider
        self.tracer = (
            tracer_provider.get_tracer(_SCOPE)
            if tracer_provider is not None
            else trace.get_tracer(_SCOPE)
        )
        meter = (
            meter_provider.get_meter(_SCOPE)
            if meter_provider is not None
            else metrics.get_meter(_SCOPE)
        )
        self.counts = Counts()
        _instruments(meter, self.counts)
        own = _own_latency.get(meter_provider) if meter_provider is not None else None
        self.latency: Latency = own if own is not None else _SdkLatency(meter)
        self.registry = registry
        self._tracing = tracer_provider is not None
        self._recheck_at = 0.0

    def tracing(self) -> bool:
        """Whether spans would be recorded anywhere (else the hooks skip them entirely).

        Without a provider of its own, tocsin follows the global one, which a service
        embedding it may install at any time; looking it up costs about a microsecond,
        so a negative answer is kept for a second.
        """
        if self._tracing:
            return True
        now = time.monotonic()
        if now < self._recheck_at:
            return False
        self._recheck_at = now + 1.0
        self._tracing = not isinstance(
            trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider
        )
        return self._tracing


_state = _State(None, None, CollectorRegistry(auto_describe=True))
_configured_pid: int | None = None
_shutdowns: list[TracerProvider | MeterProvider] = []


def use(
    *,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    registry: CollectorRegistry | None = None,
) -> None:
    """Record into these providers (None: the global ones); serve `/metrics` from `registry`."""
    global _state
    _state = _State(tracer_provider, meter_provider, registry or CollectorRegistry())


# The latency histogram of each meter provider tocsin made, which its readers export.
_own_latency: weakref.WeakKeyDictionary[metrics.MeterProvider, latency.LatencyHistogram] = (
    weakref.WeakKeyDictionary()
)


def prometheus_meter_provider(
    *exporters: MetricExporter, resource: Resource | None = None
) -> tuple[MeterProvider, CollectorRegistry]:
    """A meter provider whose metrics a new registry renders as Prometheus text, and
    that each of `exporters` is sent periodically."""
    registry = CollectorRegistry(auto_describe=True)
    histogram = latency.LatencyHistogram(LATENCY_BUCKETS, _SCOPE)
    readers: list[MetricReader] = [
        latency.PrometheusReader(histogram, registry=registry, scope_info_enabled=False),
        *(latency.PeriodicReader(histogram, exporter) for exporter in exporters),
    ]
    provider = MeterProvider(
        metric_readers=readers,
        resource=resource or Resource.create(),
        shutdown_on_exit=False,
    )
    _own_latency[provider] = histogram
    return provider, registry


def configure(environ: Mapping[str, str] = os.environ) -> None:
    """Set this process's tracing and metrics up from the `OTEL_*` variables (once per process).

    `OTEL_TRACES_EXPORTER` is `none` unless set (tocsin prints no spans by default);
    `otlp` and `console` are understood. `OTEL_METRICS_EXPORTER=otlp|console` adds a
    push exporter; the Prometheus text of `/metrics` is always there. The sampler,
    endpoint, headers and intervals are read by the SDK's own exporters and samplers.
    """
    global _configured_pid
    if _configured_pid == os.getpid():
        return
    _configured_pid = os.getpid()
    resource = _resource()
    traces = _exporters(environ, "OTEL_TRACES_EXPORTER")
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        traces = set()
    if "grpc" in environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", ""):
        log.warning("OTLP over gRPC is not installed: exporting OTLP over HTTP (protobuf)")
    tracer_provider = _tracer_provider(traces, resource)
    meter_provider, registry = prometheus_meter_provider(
        *_metric_exporters(_exporters(environ, "OTEL_METRICS_EXPORTER")), resource=resource
    )
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    if tracer_provider is not None:
        trace.set_tracer_provider(tracer_provider)
        _shutdowns.append(tracer_provider)
    # Not made global: the instruments created at import follow the global provider
    # (for services embedding tocsin), and would then report beside these under the
    # same names with stale values.
    _shutdowns.append(meter_provider)
    use(tracer_provider=tracer_provider, meter_provider=meter_provider, registry=registry)
    atexit.register(shutdown)


def shutdown() -> None:
    """Flush what the exporters still hold and stop them; safe to call more than once."""
    while _shutdowns:
        provider = _shutdowns.pop()
        try:
            provider.shutdown()
        except Exception as err:
            log.warning("telemetry shutdown failed", extra={"fields": {"error": str(err)}})


def _resource() -> Resource:
    # The pid tells the workers of one `--workers N` process apart.
    resource = Resource.create({"process.pid": os.getpid()})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "tocsin"}))
    return resource


def _exporters(environ: Mapping[str, str], variable: str) -> set[str]:
    names = {n.strip().lower() for n in environ.get(variable, "none").split(",") if n.strip()}
    return names - {"none"}


def _tracer_provider(exporters: set[str], resource: Resource) -> TracerProvider | None:
    if not exporters:
        return None
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    for name in sorted(exporters):
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        elif name == "console":
            # Synchronous on purpose: the console exporter is for watching spans as they happen.
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        else:
            log.warning("unknown OTEL_TRACES_EXPORTER ignored", extra={"fields": {"name": name}})
    return provider


def _metric_exporters(exporters: set[str]) -> list[MetricExporter]:
    found: list[MetricExporter] = []
    for name in sorted(exporters - {"prometheus"}):
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                OTLPMetricExporter,
            )

            found.append(OTLPMetricExporter())
        elif name == "console":
            found.append(ConsoleMetricExporter())
        else:
            log.warning("unknown OTEL_METRICS_EXPORTER ignored", extra={"fields": {"name": name}})
    return found


def watch(runtime: Watched) -> None:
    """Report `runtime`'s NATS state and invalid-message count (one runtime per process)."""
    global _watched
    _watched = weakref.ref(runtime)


def prometheus_text() -> bytes:
    """Every metric of this process in the Prometheus text format, for `GET /metrics`."""
    return generate_latest(_state.registry)


class HeaderLookup(Protocol):
    """Anything headers can be looked up in by name (a mapping, an HTTP request's headers)."""

    def get(self, key: str) -> str | None:
        """The value of the header `key`, if present."""
        ...


def trace_headers(headers: HeaderLookup) -> dict[str, str] | None:
    """The W3C trace context among `headers` (e.g. an HTTP request's), to continue it."""
    found = {name: value for name in _TRACE_HEADERS if (value := headers.get(name))}
    return found or None


class Produced:
    """One notification being published: the headers to send, and where to note the outcome."""

    __slots__ = ("headers", "span")

    def __init__(self, headers: dict[str, str] | None, span: trace.Span | None) -> None:
        self.headers = headers
        self.span = span

    def stored(self, epoch: str, seq: int) -> None:
        """The stream (of `epoch`) stored it as sequence `seq`."""
        _state.counts.published += 1
        if self.span is not None:
            self.span.set_attribute("messaging.message.id", encode_id(epoch, seq))


@contextmanager
def publishing_batch(count: int) -> Iterator[None]:
    """Group one publish call's `count` notifications under one span (when more than one).

    The PRODUCER spans of its notifications become `create` spans, children of this
    CLIENT `send` span, as the messaging conventions have it for batches.
    """
    if count < 2 or not _state.tracing():
        yield
        return
    attributes = {
        **_MESSAGING,
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        "messaging.batch.message_count": count,
    }
    with _state.tracer.start_as_current_span(
        PUBLISH_SPAN, kind=SpanKind.CLIENT, attributes=attributes
    ):
        token = _in_batch.set(True)
        try:
            yield
        finally:
            _in_batch.reset(token)


@contextmanager
def producing(subject: str, headers: dict[str, str] | None) -> Iterator[Produced]:
    """Publish one notification to `subject` inside a PRODUCER span, its context in the headers.

    A `traceparent` already among `headers` (a caller's) is the span's parent; otherwise
    the current context is.
    """
    try:
        with _producer_span(subject, headers) as produced:
            yield produced
    except Exception:
        _state.counts.publish_errors += 1
        raise


@contextmanager
def _producer_span(subject: str, headers: dict[str, str] | None) -> Iterator[Produced]:
    if not _state.tracing():
        yield Produced(headers, None)
        return
    parent = None
    if headers:
        given = propagate.extract(headers, getter=_GETTER)
        if trace.get_current_span(given).get_span_context().is_valid:
            parent = given
    batched = _in_batch.get()
    if batched and not trace.get_current_span(parent).get_span_context().trace_flags.sampled:
        # The batch's trace is not sampled, so no create span of it would be: skip building
        # one per recipient. The headers still carry the trace, and with it the decision.
        carrier = dict(headers or {})
        propagate.inject(carrier, context=parent)
        yield Produced(carrier, None)
        return
    attributes = {
        **_MESSAGING,
        "messaging.destination.name": subject,
        "messaging.operation.type": "create" if batched else "send",
        "messaging.operation.name": "create" if batched else "publish",
    }
    with _state.tracer.start_as_current_span(
        CREATE_SPAN if batched else PUBLISH_SPAN,
        context=parent,
        kind=SpanKind.PRODUCER,
        attributes=attributes,
    ) as span:
        carrier = dict(headers or {})
        propagate.inject(carrier)
        yield Produced(carrier or None, span)


class Telemetry:
    """What the delivery core (broker, history, hub, streams) reports as it works.

    Passed in to each role; this base reports nothing, so a role built without telemetry
    (a unit test, a service embedding tocsin) costs nothing for it. `OtelTelemetry`
    is the process's real one. Frames stay plain bytes: what a delivery is traced and
    timed against is the stored entry each frame was made from (its `time_ns` and the
    `trace` kept on it).
    """

    def received(self) -> None:
        """The live feed received a valid notification."""

    def routed(self, subject: str, msg: Msg, message_id: str, streams: int) -> object | None:
        """The live feed hands a message stored on `subject` to `streams` local streams;
        what to keep on its entry to trace the writes (None: trace none)."""
        return None

    def keep(self, headers: Mapping[str, str]) -> object | None:
        """What to keep on an entry read from the store to trace its writes later."""
        return None

    def written(
        self, items: Sequence[Written], mode: str, conn_id: str, user: str, started_ns: int
    ) -> None:
        """Frames reached a stream of `user` (LIVE or REPLAY): count, time and trace the
        notifications among them."""

    def replay(self, source: str) -> None:
        """A resumed stream read its backlog from `source` (MEMORY or STORE)."""

    def reset(self, reason: str) -> None:
        """A stream sent a reset event."""

    def evicted(self) -> None:
        """A stream was evicted by a newer one of the same user."""

    def slow_client_dropped(self) -> None:
        """A stream's mailbox overflowed: the client is dropped and will resume."""

    def stream_opened(self) -> None:
        """An SSE stream started."""

    def stream_closed(self, reason: str) -> None:
        """An SSE stream ended for `reason`."""


NO_TELEMETRY = Telemetry()


# (sequence, frame, the stored entry it was made from; None for unsequenced frames)
Written = tuple[int, bytes, Stored | None]


class OtelTelemetry(Telemetry):
    """Counts into this process's metrics and traces through OpenTelemetry (`configure`)."""

    def received(self) -> None:
        _state.counts.received += 1

    def routed(self, subject: str, msg: Msg, message_id: str, streams: int) -> object | None:
        """One CONSUMER span for all local writes, continuing the producer's trace."""
        _state.counts.routed += 1
        if not _state.tracing():
            return None
        parent = propagate.extract(msg.headers or {}, getter=_GETTER)
        attributes = {
            **_MESSAGING,
            "messaging.destination.name": subject,
            "messaging.message.id": message_id,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.message.body.size": len(msg.data),
            "tocsin.streams.local": streams,
        }
        span = _state.tracer.start_span(
            PROCESS_SPAN, context=parent, kind=SpanKind.CONSUMER, attributes=attributes
        )
        span.end()
        return _traceable(trace.set_span_in_context(span))

    def keep(self, headers: Mapping[str, str]) -> object | None:
        # Only the trace headers, and only while tracing: reading a context costs
        # microseconds, and most kept entries are never replayed.
        if not _state.tracing():
            return None
        found = {k: v for k, v in headers.items() if k.lower() in _TRACE_HEADERS}
        return _KeptHeaders(found) if found else None

    def written(
        self, items: Sequence[Written], mode: str, conn_id: str, user: str, started_ns: int
    ) -> None:
        now = time.time_ns()
        histogram = _state.latency
        tracing = _state.tracing()
        delivered = 0
        for _, _, entry in items:
            if not isinstance(entry, Notice):
                continue
            delivered += 1
            # The store's clock and ours may differ a little: never report negative time.
            seconds = max(now - entry.time_ns, 0) / 1e9
            histogram.record(seconds, mode)
            if tracing and entry.trace is not None:
                context = _context_of(entry)
                if context is not None:
                    span = _Span(entry.id, SUBJECT_PREFIX + user, mode, conn_id, seconds)
                    span.record(context, started_ns, now)
        _state.counts.delivered[mode] += delivered

    def replay(self, source: str) -> None:
        replays = _state.counts.replays
        replays[source] = replays.get(source, 0) + 1

    def reset(self, reason: str) -> None:
        resets = _state.counts.resets
        resets[reason] = resets.get(reason, 0) + 1

    def evicted(self) -> None:
        _state.counts.evictions += 1

    def slow_client_dropped(self) -> None:
        _state.counts.slow_client_drops += 1

    def stream_opened(self) -> None:
        _state.counts.opened += 1
        _state.counts.open += 1

    def stream_closed(self, reason: str) -> None:
        closed = _state.counts.closed
        closed[reason] = closed.get(reason, 0) + 1
        _state.counts.open -= 1


class _KeptHeaders(dict[str, str]):
    """A stored message's trace headers, until a delivery reads the context they carry."""


def _context_of(notice: Notice) -> Context | None:
    """The context kept on `notice`; kept headers are read once, then replaced by it."""
    kept = notice.trace
    if isinstance(kept, _KeptHeaders):
        context = _traceable(propagate.extract(kept, getter=_GETTER))
        notice.trace = context
        return context
    return kept if isinstance(kept, Context) else None


class _Span:
    """The deliver span of one notification written to one stream."""

    __slots__ = ("_attributes",)

    def __init__(self, message_id: str, subject: str, mode: str, conn_id: str, latency: float):
        self._attributes: dict[str, AttributeValue] = {
            **_MESSAGING,
            "messaging.destination.name": subject,
            "messaging.message.id": message_id,
            "tocsin.delivery.mode": mode,
            "tocsin.delivery.latency": latency,
            "tocsin.connection.id": conn_id,
        }

    def record(self, context: Context, started_ns: int, now: int) -> None:
        span = _state.tracer.start_span(
            DELIVER_SPAN,
            context=context,
            kind=SpanKind.INTERNAL,
            attributes=self._attributes,
            start_time=started_ns,
        )
        span.end(end_time=now)


def _traceable(context: Context) -> Context | None:
    """`context`, unless it continues a trace that was not sampled.

    The children of an unsampled span are never sampled (parent-based sampling, and
    ratio sampling, which decides by trace id): dropping the context skips building a
    delivery span per write only to throw it away, and a kept entry holds less.
    """
    parent = trace.get_current_span(context).get_span_context()
    if parent.is_valid and not parent.trace_flags.sampled:
        return None
    return context
