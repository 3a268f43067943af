"""Periodic work of the domains app: re-verify every domain's DNS, retire DKIM keys whose grace is over."""

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from deliveryhub.jobs import system_job

logger = logging.getLogger(__name__)


@system_job(interval=settings.DOMAIN_RECHECK_SECONDS)
def recheck_domains():
    """Verify every domain not checked within the last half interval (on-demand checks count), oldest first.

    One failing domain is logged and skipped; it never stops the sweep.
    """
    from .models import SendingDomain
    from .services import retire_expired_keys, verify_domain

    now = timezone.now()
    retire_expired_keys(now=now)
    checked = 0
    for domain in SendingDomain.objects.due_for_check(now - timedelta(seconds=settings.DOMAIN_RECHECK_SECONDS / 2)):
        try:
            verify_domain(domain)
            checked += 1
        except Exception:
            logger.exception("DNS verification of domain %s (%s) failed", domain.pk, domain.name)
    return checked
