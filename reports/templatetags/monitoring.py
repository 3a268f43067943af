"""Template filters of the monitoring pages: rates as percentages, ages in words, counts with separators."""

from django import template

register = template.Library()


@register.filter
def pct(value, digits=2):
    """0.01234 → "1.23 %"; None (no denominator) → "—"."""
    if value is None or value == "":
        return "—"
    return f"{float(value) * 100:.{int(digits)}f} %"


@register.filter
def age(seconds):
    """Seconds → "45 s", "12 min", "3.5 h", "2.0 d"; None → "—"."""
    if seconds is None:
        return "—"
    seconds = float(seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


@register.filter
def num(value):
    """1234567 → "1,234,567"."""
    if value is None or value == "":
        return "—"
    return f"{int(value):,}"


@register.filter
def rate_badge(value, limits="0.02,0.05"):
    """A Bootstrap colour for a rate against "warn,bad" limits (higher is worse)."""
    if value is None:
        return "secondary"
    warn, bad = (float(x) for x in limits.split(","))
    return "danger" if value >= bad else "warning" if value >= warn else "success"


@register.filter
def get(mapping, key):
    return mapping.get(key) if hasattr(mapping, "get") else None
