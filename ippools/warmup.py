"""Warm-up ramps: the shipped default plans and the arithmetic that builds them (pure functions)."""

from .choices import Provider
from .constants import TOTAL, WARMUP_DEFAULT_PLANS


def build_ramp(start, factors, target, length):
    """Per-provider daily caps: `start` on day 1, then multiplied each day by the factor of the day's range
    (`factors` = ((last_day or None, factor), ...)), never above `target`, reaching `target` on the last day."""
    caps = []
    value = float(start)
    for day in range(1, length + 1):
        caps.append(min(int(round(value, -1 if value >= 100 else 0)), target))
        factor = next(f for last, f in factors if last is None or day <= last)
        value *= factor
    caps[-1] = target
    return caps


def plan_days(per_provider_caps):
    """A WarmupPlan.days list giving every provider the same cap and the total four times it."""
    return [{TOTAL: cap * len(Provider.values), **{p: cap for p in Provider.values}} for cap in per_provider_caps]


def default_plans():
    """The shipped plans as dicts ready for WarmupPlan(**plan)."""
    return [
        {
            "name": name,
            "description": description,
            "days": plan_days(build_ramp(start, factors, target, length)),
            "is_builtin": True,
        }
        for name, description, start, factors, target, length in WARMUP_DEFAULT_PLANS
    ]
