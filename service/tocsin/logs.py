"""Structured logs: one JSON object per line, fields passed as `extra={"fields": {...}}`."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from typing import Any

_USERINFO = re.compile(r"//[^/@]*@")


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line with its time, level, logger, message and fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line."""
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": os.getpid(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def redact_url(url: str) -> str:
    """`url` without its user info: a NATS URL may carry a password or token there."""
    return _USERINFO.sub("//***@", url, count=1)


def configure(level: str = "INFO") -> None:
    """Send every log record of the process to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # One line per HTTP request of the CLI's own client is noise, not news.
    logging.getLogger("httpx").setLevel(logging.WARNING)
