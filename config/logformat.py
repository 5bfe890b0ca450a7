"""Log formats: human-readable by default, one JSON object per line with LOG_FORMAT=json."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from orchestration.logcontext import FIELDS

# Attributes every LogRecord has; anything else on a record came from `extra=` and is kept.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "context"}


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", run_id…, "exc_info"}` on one line, for log
    shippers (Loki, Elasticsearch, CloudWatch) that index fields: `run_id = 42` finds every line
    of a run, whichever process wrote it."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in FIELDS and key not in out and not key.startswith("_"):
                out[key] = value if isinstance(value, str | int | float | bool | type(None)) else repr(value)
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)
