"""Signals other apps may listen to (alerts): sent after the change is committed."""

from django.dispatch import Signal

ip_listed = Signal()  # sender=IPAddress class, ip=..., zones=[...]
ip_delisted = Signal()  # sender=IPAddress class, ip=...
warmup_stepped = Signal()  # sender=IPAddress class, ip=..., kind=IPEventKind, day=...
# Sending capacity may have grown (a warm-up started, stopped or re-planned, a cap raised, an IP resumed or added to a
# pool): mail waiting for capacity should be looked at again now, not when its wait was due to end.
capacity_changed = Signal()  # sender=IPAddress class or WarmupPlan class, reason="..."
