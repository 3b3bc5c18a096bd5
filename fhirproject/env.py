"""Small typed readers of environment variables that fail loudly on bad values.

A bad value raises `SettingError` with one line naming the variable, the value and what
it should be; `manage.py` and `wsgi.py` print that line and exit instead of a traceback.
"""
from __future__ import annotations

import os

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingError(ValueError):
    """A setting from the environment that the server cannot run with."""


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingError(f"{name}={raw!r} is not a boolean (use true or false)")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer within [minimum, maximum] (either bound optional)."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        value = default
    else:
        text = raw.strip()
        # int() also takes '²', '٣' or '1_000'; a setting is plain ASCII digits.
        if not (text.lstrip("+-").isascii() and text.lstrip("+-").isdigit()):
            raise SettingError(f"{name}={raw!r} is not an integer")
        value = int(text)
    if minimum is not None and value < minimum:
        raise SettingError(f"{name}={value} is too small: it must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise SettingError(f"{name}={value} is too large: it must be at most {maximum}")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None, maximum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        value = default
    else:
        try:
            value = float(raw)
        except ValueError:
            raise SettingError(f"{name}={raw!r} is not a number") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise SettingError(f"{name}={raw!r} is not a finite number")
    if minimum is not None and value < minimum:
        raise SettingError(f"{name}={value:g} is too small: it must be at least {minimum:g}")
    if maximum is not None and value > maximum:
        raise SettingError(f"{name}={value:g} is too large: it must be at most {maximum:g}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def require(condition: bool, message: str) -> None:
    """A rule between settings (e.g. a default within its maximum)."""
    if not condition:
        raise SettingError(message)


def env_limit(name: str, default: int) -> int:
    """A positive integer limit (a size, a count, milliseconds)."""
    value = env_int(name, default)
    if value < 1:
        raise ValueError(f"{name}={value} must be a positive integer")
    return value
