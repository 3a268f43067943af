"""`manage.py rebuild_rollups --since … [--until …]`: recount the roll-ups of a time range from the source rows."""

import re
from datetime import UTC, datetime, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from deliveryhub import audit
from reports import rollups

RELATIVE = re.compile(r"^(\d+)([mhd])$")  # 90m, 48h, 7d
UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_when(text, now):
    """An ISO date or date-time (UTC unless it says otherwise), or a span back from now: 90m, 48h, 7d."""
    text = (text or "").strip()
    match = RELATIVE.match(text)
    if match:
        return now - timedelta(**{UNITS[match.group(2)]: int(match.group(1))})
    value = parse_datetime(text)
    if value is None:
        day = parse_date(text)
        value = datetime(day.year, day.month, day.day) if day else None
    if value is None:
        raise CommandError(f"{text!r} is not a date (2026-12-01), a date-time (2026-12-01T10:00) or a span (48h, 7d).")
    return value if timezone.is_aware(value) else timezone.make_aware(value, UTC)


class Command(BaseCommand):
    help = "Recount the minute and hour roll-ups (and correct the running totals) of a time range from attempts, " \
           "events and messages."  # fmt: skip

    def add_arguments(self, parser):
        parser.add_argument("--since", required=True, help="Start: 2026-12-01, 2026-12-01T10:00, or 48h / 7d ago.")
        parser.add_argument("--until", help="End (exclusive; default: now), same forms.")

    def handle(self, *args, since, until=None, **options):
        now = timezone.now()
        start = parse_when(since, now)
        end = parse_when(until, now) if until else now
        if start >= end:
            raise CommandError("--since must be before --until.")
        if start > now:
            raise CommandError("--since is in the future.")
        with audit.audit_context(principal=None):
            result = rollups.rebuild(start, end, log=self.stdout.write)
            span = f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
            audit.record("rollups.rebuild", message=f"Roll-ups rebuilt from {span} (manage.py rebuild_rollups)")
        self.stdout.write(self.style.SUCCESS(
            f"Rebuilt {result['hours']} hour and {result['minutes']} minute roll-up rows from "
            f"{rollups.hour_of(start):%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC."))  # fmt: skip
