"""The API's tags (plain data: the settings read the descriptions before Django starts)."""

# URL collection (/api/v1/<collection>/…) -> the tag its operations appear under; others get their own name.
TAGS = {
    "messages": "Messages",
    "suppressions": "Messages",
    "routes": "Routing",
    "domains": "Domains",
    "nodes": "IP pools",
    "ip-addresses": "IP pools",
    "ip-pools": "IP pools",
    "ip-pool-members": "IP pools",
    "ip-pool-grants": "IP pools",
    "warmup-plans": "IP pools",
    "blocklist-checks": "IP pools",
    "default-pools": "IP pools",
    "throttle-rules": "Throttling",
    "throttle-states": "Throttling",
    "tenants": "Tenants and access",
    "memberships": "Tenants and access",
    "api-keys": "Tenants and access",
    "audit-log": "Audit",
    "jobs": "Audit",
}
TAG_DESCRIPTIONS = [
    {"name": "Messages", "description": "Send mail (one row per recipient), follow it, cancel or release it; the "
     "never-send list."},
    {"name": "Domains", "description": "Sending domains: the DNS records to publish, verification, DKIM keys."},
    {"name": "Routing", "description": "Smarthost routes: recipient domains that go to a fixed relay."},
    {"name": "IP pools", "description": "Delivery nodes, source IPs, pools, warm-up plans, blocklist results."},
    {"name": "Throttling", "description": "Limits per source IP and provider, and the adaptive slow-downs."},
    {"name": "Tenants and access", "description": "Tenants, their members and API keys."},
    {"name": "Audit", "description": "The tamper-evident audit log, its exports and other background jobs."},
]  # fmt: skip
