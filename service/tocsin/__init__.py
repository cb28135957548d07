"""tocsin: durable live notifications from NATS JetStream to the browser's EventSource."""

from .model import Notification, NotificationBody, PublishRequest
from .publisher import Publisher, publish

__all__ = ["Notification", "NotificationBody", "PublishRequest", "Publisher", "publish"]
