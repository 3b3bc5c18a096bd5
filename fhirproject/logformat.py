"""Log lines: `key=value` text by default, one JSON object per line with LOG_FORMAT=json.

A request line (fhirproject.requests) carries its fields in `record.fields`; every other
record (a warning, a traceback) gets the same shape, so a log collector parses one format.
"""
from __future__ import annotations

import logging
import time

import orjson

_STANDARD = ("time", "level", "logger", "message")


_second: list = [None, ""]  # the last whole second formatted, and its text (one line per request)


def _timestamp(record: logging.LogRecord) -> str:
    whole = int(record.created)
    if _second[0] != whole:
        _second[:] = [whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))]
    return f"{_second[1]}.{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"time": _timestamp(record), "level": record.levelname, "logger": record.name,
                "message": record.getMessage()}
        line.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = f"{_timestamp(record)} {record.levelname} {record.name}: {record.getMessage()}"
        fields = getattr(record, "fields", None)
        if fields:
            text += " " + " ".join(f"{key}={_text_value(value)}" for key, value in fields.items())
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def _text_value(value: object) -> str:
    text = str(value)
    return f'"{text}"' if (" " in text or not text) else text
