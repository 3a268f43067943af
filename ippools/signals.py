"""Signals other apps may listen to (alerts): sent after the change is committed."""

from django.dispatch import Signal

ip_listed = Signal()  # sender=IPAddress class, ip=..., zones=[...]
ip_delisted = Signal()  # sender=IPAddress class, ip=...
warmup_stepped = Signal()  # sender=IPAddress class, ip=..., kind=IPEventKind, day=...
