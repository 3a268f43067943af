"""Signals of the domains app (for alerts, later): a domain's DNS status changed."""

from django.dispatch import Signal

# Sent after the transaction that changed the status commits: sender=SendingDomain, domain, before, after.
domain_status_changed = Signal()
