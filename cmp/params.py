"""Checking the plain values every entry point takes (numbers, flags, choices, JSON text).

The pages, the HTTP API and the CLI pass user values through these, so a wrong type,
a NaN, a 5000-digit integer or a JSON object where text is expected gets the same one
line everywhere, naming the input. Messages never echo a long value back.
"""
from __future__ import annotations

import math
import numbers


class ParamError(ValueError):
    """A value of the wrong type or out of range; the message names the input."""


def kind(value) -> str:
    """How a value looks in JSON terms, for messages ("null", "text", "a JSON object", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


def _show(v) -> str:
    if isinstance(v, numbers.Integral) and abs(v) >= 10**15:
        return f"a {len(str(abs(v)))}-digit number" if abs(v) < 10**4000 else "a number with thousands of digits"
    return f"{v:g}" if isinstance(v, float) else str(v)


def number(value, name: str, lo: float | None = None, hi: float | None = None, *, whole: bool = False):
    """``value`` if it is a number (not a bool) within [lo, hi]; whole numbers only if ``whole``.

    Returns an int when ``whole``, else a float.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParamError(f"{name} must be a number; got {kind(value)}")
    if not isinstance(value, numbers.Integral):
        value = float(value)
    if isinstance(value, float) and math.isnan(value):
        raise ParamError(f"{name} must be a number, not NaN")
    if lo is not None and value < lo:
        raise ParamError(f"{name} is {_show(value)}, less than the minimum value {lo:g}")
    if hi is not None and value > hi:
        raise ParamError(f"{name} is {_show(value)}, greater than the maximum value {hi:g}")
    if whole:
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            raise ParamError(f"{name} must be a whole number; got {_show(value)}")
        return int(value)
    return float(value)


def flag(value, name: str, default: bool | None = None, *, none_ok: bool = False) -> bool | None:
    """true/false; null means ``default`` when one is given, or stays None ("not set") with ``none_ok``."""
    if value is None and default is not None:
        return default
    if value is None and none_ok:
        return None
    if not isinstance(value, bool):
        raise ParamError(f"{name} must be true or false; got {kind(value)}")
    return value


def choice(value, name: str, options) -> str:
    """One of ``options`` (text)."""
    options = tuple(options)
    if not isinstance(value, str) or value not in options:
        got = repr(value[:40]) if isinstance(value, str) else kind(value)
        raise ParamError(f"{name} must be one of {', '.join(options)}; got {got}")
    return value


def text(value, name: str, max_chars: int | None = None) -> str:
    """Text (null = empty); a JSON object or list where JSON *text* is expected is named as such."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ParamError(f"{name} must be JSON text (a string); got {kind(value)}")
    if max_chars is not None and len(value) > max_chars:
        raise ParamError(f"{name} is too long ({len(value):,} characters; the limit is {max_chars:,})")
    return value
