"""Configuration backup of the ippools app: nodes, warm-up plans, IP addresses (with their warm-up position), pools,
members, grants, tenants' default pools, throttle rules and blocklist zones. Observed state (reputation, listings,
PTR checks, usage counters) is not configuration and is measured again after a restore."""

from deliveryhub import backup

from .models import (
                               BlocklistZone,
                               DeliveryNode,
                               IPAddress,
                               IPPool,
                               IPPoolGrant,
                               IPPoolMember,
                               TenantDefaultPool,
                               ThrottleRule,
                               WarmupPlan,
)

backup.register(backup.Section("ippools.nodes", DeliveryNode, order=40, key=("name",),
                               fields=("region", "hostname", "status")))  # fmt: skip
backup.register(backup.Section(
    "ippools.warmup_plans", WarmupPlan, order=41, key=("name",),
    fields=("description", "days", "max_bounce_rate", "max_deferral_rate", "max_complaint_rate", "step_back_days",
            "is_builtin"),
))  # fmt: skip
backup.register(backup.Section(
    "ippools.ip_addresses", IPAddress, order=42, key=("address",),
    fields=("node", "ehlo_hostname", "state", "warmup_plan", "warmup_day", "warmup_last_step", "notes"),
    refs={"node": "ippools.nodes", "warmup_plan": "ippools.warmup_plans"},
))  # fmt: skip
backup.register(backup.Section(
    "ippools.pools", IPPool, order=43, key=("name",),
    fields=("description", "purpose", "tenant", "all_tenants", "region", "pause_on_listing"),
    refs={"tenant": "core.tenants"},
))  # fmt: skip
backup.register(backup.Section(
    "ippools.pool_members", IPPoolMember, order=44, key=("pool", "ip"),
    fields=("weight", "paused", "paused_by_listing", "pause_reason"),
    refs={"pool": "ippools.pools", "ip": "ippools.ip_addresses"},
))  # fmt: skip
backup.register(backup.Section("ippools.pool_grants", IPPoolGrant, order=45, key=("pool", "tenant"), fields=(),
                               refs={"pool": "ippools.pools", "tenant": "core.tenants"}))  # fmt: skip
backup.register(backup.Section("ippools.tenant_default_pools", TenantDefaultPool, order=46, key=("tenant", "purpose"),
                               fields=("pool",), refs={"tenant": "core.tenants", "pool": "ippools.pools"}))  # fmt: skip
backup.register(backup.Section(
    "ippools.throttle_rules", ThrottleRule, order=47, key=None,
    fields=("tenant", "ip", "pool", "provider", "max_connections", "max_messages_per_connection", "max_per_minute",
            "max_per_hour", "enabled", "description"),
    refs={"tenant": "core.tenants", "ip": "ippools.ip_addresses", "pool": "ippools.pools"},
))  # fmt: skip
backup.register(backup.Section("ippools.blocklist_zones", BlocklistZone, order=48, key=("zone",),
                               fields=("kind", "description", "codes", "enabled")))  # fmt: skip
