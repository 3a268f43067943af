"""
Monitoring pages: the tenant dashboard and its drill-downs (by domain, source IP, provider, campaign), the platform
dashboard (operators) and its drill-downs (IP, provider, pool, tenant), each chart's numbers as a table and CSV.

Objects are reached through `for_request()` / `restrict()` like every panel page: another tenant's domain or
campaign, or an IP outside the tenant's pools, is a 404; platform pages need an operator (403). A page renders its
charts from the numbers it embeds (`json_script`), and its live part (`#monitoring-live`) is polled with HTMX; the
range picker swaps the page in place (hx-select, hx-push-url).
"""

from datetime import timedelta
from zoneinfo import ZoneInfo

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from deliveryhub.choices import Action, Area
from deliveryhub.generic_views import csv_download
from deliveryhub.models import Tenant
from domains.choices import DNSCheckStatus, RecordKind
from domains.models import DnsCheck, SendingDomain
from ippools.models import BlocklistCheck, IPAddress, IPPool, ReputationSample
from queues.models import Campaign

from . import dashboards, gauges, health
from .choices import AlertState
from .constants import DASHBOARD_REFRESH_SECONDS, TOP_TENANTS
from .dashboards import PROVIDERS, RANGES, Scope
from .models import Alert

REPUTATION_SAMPLES = 500  # points on an IP's reputation chart
RECENT_ALERTS = 10
BREAKDOWN_ROWS = 25
AUTH_KINDS = (RecordKind.SPF, RecordKind.DKIM, RecordKind.DMARC, RecordKind.ALIGNMENT)


def _member(request):
    """The current tenant, which the principal may watch (sending, view); else a redirect-worthy None."""
    tenant = request.tenant
    if tenant is None:
        return None
    if not request.principal.allows(tenant.pk, Area.SENDING, Action.VIEW):
        raise PermissionDenied(f"Your role cannot view sending in {tenant}.")
    return tenant


def _operator(request):
    if not request.principal.is_platform:
        raise PermissionDenied("The platform dashboard is for operators.")


class Page:
    """One monitoring page: whose numbers (`scope`), what it is about, where its links and CSVs go."""

    def __init__(self, request, *, platform, scope, title, subject="", kind="dashboard", obj=None, url_args=()):
        self.request, self.platform, self.scope, self.title, self.subject = request, platform, scope, title, subject
        self.kind, self.obj, self.url_args = kind, obj, url_args
        self.range = dashboards.parse_range(request.GET.get("range"))
        tenant = request.tenant if not platform else None
        self.tz = ZoneInfo(tenant.time_zone) if tenant is not None else ZoneInfo("UTC")
        self.tz_name = str(self.tz)

    @property
    def url_name(self):
        prefix = "platform-monitoring" if self.platform else "monitoring"
        return prefix if self.kind == "dashboard" else f"{prefix}-{self.kind}"

    def url(self, **params):
        query = "&".join(f"{k}={v}" for k, v in {"range": self.range, **params}.items())
        return f"{reverse(self.url_name, args=self.url_args)}?{query}"

    @property
    def nav_active(self):
        return "platform" if self.platform else "dashboard"

    @property
    def range_links(self):
        base = reverse(self.url_name, args=self.url_args)
        return [(key, value[2], f"{base}?range={key}", key == self.range) for key, value in RANGES.items()]

    @property
    def fragment_url(self):
        return self.url(fragment=1)

    @property
    def csv_url(self):
        return self.url(export="csv")

    @property
    def reputation_csv_url(self):
        return self.url(export="reputation")

    @property
    def range_label(self):
        return RANGES[self.range][2]

    def drill_url(self, dimension, value):
        """The drill-down page of one breakdown row (None where there is none)."""
        prefix = "platform-monitoring" if self.platform else "monitoring"
        if value in (None, "", 0):
            return None
        names = {"domain": "domain", "source_ip": "ip", "provider": "provider", "campaign": "campaign",
                 "pool": "pool", "tenant": "tenant"}  # fmt: skip
        name = names.get(dimension)
        if name in ("domain", "campaign") and self.platform or name in ("pool", "tenant") and not self.platform:
            return None
        if name == "campaign":
            value = self.campaign_uuids.get(value)
            if value is None:
                return None
        return f"{reverse(f'{prefix}-{name}', args=[value])}?range={self.range}"

    campaign_uuids = {}

    def context(self):
        since, now, step = dashboards.window(self.range)
        series = dashboards.series(self.scope, self.range, tz=self.tz, now=now)
        dims = self.breakdown_dimensions()
        grouped, totals = dashboards.breakdowns(self.scope, [d for d, _ in dims], since, now, limit=BREAKDOWN_ROWS)
        breakdowns = []
        names = Labels(self.scope, self.platform)
        for dimension, label in dims:
            rows = grouped[dimension]
            if dimension == "campaign":
                self.campaign_uuids = names.campaign_uuids([row["value"] for row in rows])
            for row in rows:
                row["label"] = names.label(dimension, row["value"])
                row["url"] = self.drill_url(dimension, row["value"])
            breakdowns.append({"dimension": dimension, "label": label, "rows": rows,
                               "csv": self.url(export="csv", by=dimension)})  # fmt: skip
        hour_ago = now - timedelta(hours=1)
        return {
            "page": self,
            "ranges": [(key, value[2]) for key, value in RANGES.items()],
            "series": series,
            "series_table": list(zip(series["labels"], series["rows"], strict=True)),
            "totals": totals,
            "breakdowns": breakdowns,
            "replies": dashboards.top_replies(self.scope, hour_ago, now),
            "refresh_seconds": DASHBOARD_REFRESH_SECONDS,
            "step": step,
        }

    def breakdown_dimensions(self):
        dims = [("provider", "By provider"), ("source_ip", "By source IP"), ("pool", "By pool")]
        if self.platform:
            dims.append(("tenant", "By tenant"))
        else:
            dims += [("domain", "By sending domain"), ("campaign", "By campaign")]
        skip = {"domain": self.scope.domain_id, "source_ip": self.scope.source_ip, "provider": self.scope.provider,
                "campaign": self.scope.campaign_id, "pool": self.scope.pool_id,
                "tenant": self.scope.tenant_id if self.platform else None}  # fmt: skip
        return [(d, label) for d, label in dims if skip.get(d) is None]

    def export(self):
        """?export=csv: the chart's numbers (default) or a breakdown (`by=`), every row."""
        since, now, _ = dashboards.window(self.range)
        by = self.request.GET.get("by")
        if by:
            if by not in dashboards.DIMENSIONS or by == "node" or (by == "tenant" and not self.platform):
                raise Http404("No such breakdown.")
            names = Labels(self.scope, self.platform)
            counters = [*dashboards.SERIES_FIELDS, "delivery_rate", "bounce_rate", "deferral_rate", "complaint_rate"]
            rows = [[by, "name", *counters]]
            for row in dashboards.breakdown(self.scope, by, since, now):
                rows.append([row["value"], names.label(by, row["value"]),
                             *(row[c] if row[c] is not None else "" for c in counters)])  # fmt: skip
            return csv_download(rows, f"{self.subject or self.title} by {by} {self.range}")
        series = dashboards.series(self.scope, self.range, tz=self.tz, now=now)
        return csv_download(dashboards.columns_for_csv(series), f"{self.subject or self.title} {self.range}")


class Labels:
    """Names for breakdown values: domain names, pool names, tenant names, campaign names."""

    def __init__(self, scope, platform):
        self.scope, self.platform, self._cache = scope, platform, {}

    def _names(self, dimension):
        if dimension not in self._cache:
            if dimension == "domain":
                names = dict(SendingDomain.objects.values_list("pk", "name"))
            elif dimension == "pool":
                names = dict(IPPool.objects.values_list("pk", "name"))
            elif dimension == "tenant":
                names = dict(Tenant.objects.values_list("pk", "name"))
            elif dimension == "campaign":
                names = dict(Campaign.objects.values_list("pk", "name"))
            else:
                names = {}
            self._cache[dimension] = names
        return self._cache[dimension]

    def label(self, dimension, value):
        if dimension in ("domain", "pool", "tenant", "campaign"):
            if not value:
                return {"pool": "(default pool)", "campaign": "(transactional)", "domain": "(none)"}.get(dimension, "—")
            return self._names(dimension).get(value, f"#{value}")
        return value or "—"

    def campaign_uuids(self, ids):
        rows = Campaign.objects.filter(pk__in=[i for i in ids if i]).values_list("pk", "uuid")
        return dict(rows)


def _render(request, page, extra=None):
    if request.GET.get("export") == "csv":
        return page.export()
    context = {**page.context(), **(extra or {})}
    template = "reports/monitoring/_live.html" if request.GET.get("fragment") else "reports/monitoring/page.html"
    return render(request, template, context)


# ---------------------------------------------------------------------------------------------------------------------
# Tenant pages
# ---------------------------------------------------------------------------------------------------------------------


def _tenant_page(view):
    @login_required
    @require_GET
    def wrapper(request, *args, **kwargs):
        tenant = _member(request)
        if tenant is None:
            from django.contrib import messages
            from django.shortcuts import redirect

            messages.warning(request, "Select a tenant first.")
            return redirect("dashboard")
        return view(request, tenant, *args, **kwargs)

    wrapper.__name__ = view.__name__
    wrapper.__doc__ = view.__doc__
    return wrapper


def tenant_extras(request, tenant):
    """The tenant dashboard's own panels: queue, domains' authentication, warm-up of its IPs, recent alerts."""
    states = {status: n for (_, status), n in gauges.queue_by_state(tenant.pk).items()}
    oldest = gauges.oldest_waiting(tenant.pk).get(tenant.pk)
    ips = (IPAddress.objects.in_pools_of(tenant).select_related("warmup_plan").order_by("address"))
    alerts = Alert.objects.for_request(request).select_related("rule")[:RECENT_ALERTS]
    domains = list(SendingDomain.objects.for_request(request).order_by("name"))
    checks = {}
    for domain_id, kind, status in DnsCheck.objects.filter(domain__in=domains, kind__in=AUTH_KINDS).values_list(
        "domain_id", "kind", "status"
    ):
        worst = checks.setdefault(domain_id, {}).get(kind)
        checks[domain_id][kind] = status if worst in (None, DNSCheckStatus.OK) else worst  # one bad record shows
    for domain in domains:
        domain.auth = [(kind, checks.get(domain.pk, {}).get(kind, "")) for kind in AUTH_KINDS]
    return {
        "queue": states,
        "queue_waiting": states.get("queued", 0) + states.get("deferred", 0),
        "oldest_age": oldest,
        "domains": domains,
        "auth_kinds": AUTH_KINDS,
        "ips": ips,
        "alerts": alerts,
        "firing": Alert.objects.for_request(request).filter(state=AlertState.FIRING).count(),
    }


@_tenant_page
def tenant_dashboard(request, tenant):
    """The tenant's delivery dashboard."""
    page = Page(request, platform=False, scope=Scope(tenant_id=tenant.pk), title="Monitoring", subject=tenant.slug)
    if request.GET.get("card"):  # the main dashboard's card: a few numbers, no charts
        since, now, _ = dashboards.window(page.range)
        context = {"totals": dashboards.totals(page.scope, since, now), **tenant_extras(request, tenant)}
        return render(request, "reports/monitoring/_card.html", context)
    return _render(request, page, tenant_extras(request, tenant))


@_tenant_page
def domain_drilldown(request, tenant, pk):
    domain = get_object_or_404(SendingDomain.objects.for_request(request), pk=pk)
    page = Page(request, platform=False, scope=Scope(tenant_id=tenant.pk, domain_id=domain.pk),
                title=f"Domain {domain.name}", subject=domain.name, kind="domain", obj=domain,
                url_args=[pk])  # fmt: skip
    return _render(request, page)


def _ip_context(ip, request, tenant=None):
    samples = list(ReputationSample.objects.filter(ip=ip).order_by("-time").values_list("time", "score")
                   [:REPUTATION_SAMPLES])[::-1]  # fmt: skip
    tz = ZoneInfo(tenant.time_zone) if tenant is not None else ZoneInfo("UTC")
    return {
        "ip": ip,
        "reputation": {"labels": [t.astimezone(tz).strftime("%m-%d %H:%M") for t, _ in samples],
                       "scores": [score for _, score in samples]},  # fmt: skip
        "reputation_rows": [(t, score) for t, score in reversed(samples)][:50],
        "listings": BlocklistCheck.objects.filter(ip=ip).order_by("-checked_at")[:20],
    }


@_tenant_page
def ip_drilldown(request, tenant, address):
    ip = get_object_or_404(IPAddress.objects.in_pools_of(tenant), address=address)
    page = Page(request, platform=False, scope=Scope(tenant_id=tenant.pk, source_ip=ip.address),
                title=f"Source IP {ip.address}", subject=ip.address, kind="ip", obj=ip, url_args=[address])  # fmt: skip
    if request.GET.get("export") == "reputation":
        return csv_download([["time_utc", "score"], *[(t.isoformat(), s) for t, s in ReputationSample.objects.filter(
            ip=ip).order_by("time").values_list("time", "score")]], f"reputation {ip.address}")  # fmt: skip
    return _render(request, page, _ip_context(ip, request, tenant))


def _provider(provider):
    if provider not in PROVIDERS:
        raise Http404("No such provider.")
    return provider


@_tenant_page
def provider_drilldown(request, tenant, provider):
    provider = _provider(provider)
    page = Page(request, platform=False, scope=Scope(tenant_id=tenant.pk, provider=provider),
                title=f"Provider {provider}", subject=provider, kind="provider", url_args=[provider])  # fmt: skip
    return _render(request, page)


@_tenant_page
def campaign_drilldown(request, tenant, uuid):
    campaign = get_object_or_404(Campaign.objects.for_request(request), uuid=uuid)
    page = Page(request, platform=False, scope=Scope(tenant_id=tenant.pk, campaign_id=campaign.pk),
                title=f"Campaign {campaign.name}", subject=campaign.name, kind="campaign", obj=campaign,
                url_args=[uuid])  # fmt: skip
    return _render(request, page)


# ---------------------------------------------------------------------------------------------------------------------
# Platform pages (operators)
# ---------------------------------------------------------------------------------------------------------------------


def _platform_page(view):
    @login_required
    @require_GET
    def wrapper(request, *args, **kwargs):
        _operator(request)
        return view(request, *args, **kwargs)

    wrapper.__name__ = view.__name__
    wrapper.__doc__ = view.__doc__
    return wrapper


def platform_extras(now=None):
    now = now or timezone.now()
    since = now - timedelta(days=1)
    ready, checks = health.readiness()
    by_tenant = dashboards.breakdowns(Scope(), ["tenant"], since, now)[0]["tenant"]
    names = dict(Tenant.objects.values_list("pk", "name"))
    for row in by_tenant:
        row["label"] = names.get(row["value"], f"#{row['value']}")
    by_complaints = sorted([r for r in by_tenant if r["complaint_rate"] is not None],
                           key=lambda r: -r["complaint_rate"])[:TOP_TENANTS]  # fmt: skip
    states = {}
    for (_, status), n in gauges.queue_by_state().items():
        states[status] = states.get(status, 0) + n
    return {
        "checks": checks,
        "ready": ready,
        "nodes": gauges.nodes(now),
        "rq": gauges.rq_state(),
        "scheduler_age": gauges.scheduler_age(now),
        "ip_rows": IPAddress.objects.select_related("node").annotate(pools=Count("memberships")).order_by("address"),
        "top_volume": by_tenant[:TOP_TENANTS],
        "top_complaints": by_complaints,
        "queue": states,
        "queue_waiting": states.get("queued", 0) + states.get("deferred", 0),
        "oldest_age": max(gauges.oldest_waiting(now=now).values(), default=None),
        "alerts": Alert.objects.filter(tenant__isnull=True).select_related("rule")[:RECENT_ALERTS],
        "firing": Alert.objects.filter(tenant__isnull=True, state=AlertState.FIRING).count(),
    }


@_platform_page
def platform_dashboard(request):
    """Every tenant's mail, the processes and the IPs."""
    page = Page(request, platform=True, scope=Scope(), title="Platform monitoring", subject="platform")
    return _render(request, page, platform_extras())


@_platform_page
def platform_ip(request, address):
    ip = get_object_or_404(IPAddress.objects.all(), address=address)
    page = Page(request, platform=True, scope=Scope(source_ip=ip.address), title=f"Source IP {ip.address}",
                subject=ip.address, kind="ip", obj=ip, url_args=[address])  # fmt: skip
    if request.GET.get("export") == "reputation":
        return csv_download([["time_utc", "score"], *[(t.isoformat(), s) for t, s in ReputationSample.objects.filter(
            ip=ip).order_by("time").values_list("time", "score")]], f"reputation {ip.address}")  # fmt: skip
    return _render(request, page, _ip_context(ip, request))


@_platform_page
def platform_provider(request, provider):
    provider = _provider(provider)
    page = Page(request, platform=True, scope=Scope(provider=provider), title=f"Provider {provider}",
                subject=provider, kind="provider", url_args=[provider])  # fmt: skip
    return _render(request, page)


@_platform_page
def platform_pool(request, pk):
    pool = get_object_or_404(IPPool.objects.all(), pk=pk)
    page = Page(request, platform=True, scope=Scope(pool_id=pool.pk), title=f"Pool {pool.name}", subject=pool.name,
                kind="pool", obj=pool, url_args=[pk])  # fmt: skip
    return _render(request, page)


@_platform_page
def platform_tenant(request, pk):
    tenant = get_object_or_404(Tenant.objects.all(), pk=pk)
    page = Page(request, platform=True, scope=Scope(tenant_id=tenant.pk), title=f"Tenant {tenant.name}",
                subject=tenant.slug, kind="tenant", obj=tenant, url_args=[pk])  # fmt: skip
    return _render(request, page)
