"""
Roll up a finished delivery run's database and compare every counter with a recount from its rows.

Run by tests/reports/test_rollups_crash.py after tests/queues/crash_scenario.py, in a subprocess with the same
environment (the same file-based SQLite database): `python tests/reports/rollup_recount.py`. Prints one JSON line.
"""

import json
import os
import sys
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main():
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "deliveryhub.settings"
    import django

    django.setup()
    from django.utils import timezone

    from queues.models import DeliveryAttempt
    from reports import rollups
    from reports.models import HourRollup, MinuteRollup, RollupTotal
    from tests.reports.monitoring_helpers import recount, rolled_up

    read = rollups.roll_up(now=timezone.now() + timedelta(minutes=1))
    again = rollups.roll_up(now=timezone.now() + timedelta(minutes=1))
    expected = {k: v for k, v in recount().items() if k[2] != "accepted"}
    result = {"read": read, "again": again, "attempts": DeliveryAttempt.objects.count(),
              "expected": sum(expected.values())}  # fmt: skip
    for model in (MinuteRollup, HourRollup, RollupTotal):
        got = rolled_up(model)
        result[model.__name__] = {"total": sum(got.values()),
                                  "mismatches": [str(k) for k, v in expected.items() if got[k] != v]}  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
