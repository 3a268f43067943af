"""
Receivers of the ippools and domains signals: a blocklist listing, a warm-up step-back and a failing domain become
alert events (reports.alerts.raise_event); a delisting and a domain verified again resolve them. Connected in
ReportsConfig.ready. The signals are sent after the change committed; a receiver's failure is logged and never
reaches the sender.
"""

import logging

from deliveryhub.models import Tenant
from domains.choices import DomainStatus
from domains.signals import domain_status_changed
from ippools.choices import IPEventKind
from ippools.models import IPAddress, IPPool, IPPoolMember
from ippools.signals import ip_delisted, ip_listed, warmup_stepped

from . import alerts
from .choices import RuleMetric

logger = logging.getLogger(__name__)


def _tenants_using(ip):
    """Tenants whose mail may leave from `ip`: dedicated pools, pools granted to them, and (None) shared-to-all."""
    pools = IPPool.objects.filter(pk__in=IPPoolMember.objects.filter(ip=ip).values("pool_id"))
    if pools.filter(tenant__isnull=True, all_tenants=True).exists():
        return list(Tenant.objects.filter(is_active=True).values_list("pk", flat=True))
    ids = set(pools.exclude(tenant__isnull=True).values_list("tenant_id", flat=True))
    ids |= set(pools.values_list("grants__tenant_id", flat=True))
    return [pk for pk in ids if pk]


def _safely(func):
    def receiver(sender, **kwargs):
        try:
            func(sender, **kwargs)
        except Exception:
            logger.exception("Alert receiver %s failed", func.__name__)

    receiver.__name__ = func.__name__
    return receiver


@_safely
def on_ip_listed(sender, ip, zones, **kwargs):
    alerts.raise_event(RuleMetric.IP_LISTED, key=f"ip={ip.address}", label=ip.address, ip=ip,
                       detail=f"{ip.address} listed on {', '.join(zones)}", tenant_ids=_tenants_using(ip))  # fmt: skip


@_safely
def on_ip_delisted(sender, ip, **kwargs):
    alerts.resolve_event(RuleMetric.IP_LISTED, key=f"ip={ip.address}")


@_safely
def on_warmup_stepped(sender, ip, kind, day, **kwargs):
    if kind != IPEventKind.WARMUP_STEP_BACK:
        return
    alerts.raise_event(RuleMetric.WARMUP_STEPPED_BACK, key=f"ip={ip.address}", label=ip.address, ip=ip,
                       detail=f"{ip.address} stepped back to warm-up day {day}",
                       tenant_ids=_tenants_using(ip))  # fmt: skip


@_safely
def on_domain_status_changed(sender, domain, before, after, **kwargs):
    key = f"domain={domain.pk}"
    if after == DomainStatus.FAILING:
        alerts.raise_event(RuleMetric.DOMAIN_FAILING, key=key, label=domain.name, domain=domain,
                           detail=f"{domain.name}: DNS check failing (was {before})",
                           tenant_ids=[domain.tenant_id])  # fmt: skip
    elif before == DomainStatus.FAILING:
        alerts.resolve_event(RuleMetric.DOMAIN_FAILING, key=key)


def connect():
    ip_listed.connect(on_ip_listed, sender=IPAddress, dispatch_uid="reports-alert-ip-listed")
    ip_delisted.connect(on_ip_delisted, sender=IPAddress, dispatch_uid="reports-alert-ip-delisted")
    warmup_stepped.connect(on_warmup_stepped, sender=IPAddress, dispatch_uid="reports-alert-warmup")
    domain_status_changed.connect(on_domain_status_changed, dispatch_uid="reports-alert-domain")
