"""
Verbs of the IP pools app, one module per concern: nodes, pools, source-IP selection (the delivery engine's entry
points `select_source_ip()` and `record_outcomes()`), throttling, warm-up, blocklists, reputation, IP events.

Every verb that changes configuration is atomic and writes its audit entry in the same transaction (the actor comes
from the audit context, see deliveryhub/audit.py); signals for other apps are sent after commit. Callers use
`from ippools import services` and `services.<verb>`: the names below are the app's service interface.
"""

from .blocklists import (
    apply_listing_state,
    check_blocklists,
    check_domain_blocklists,
    check_ptr,
    sending_domain_names,
    sweep_blocklists,
)
from .events import ip_event
from .nodes import DEFAULT_POOL_NAME, LOCAL_IP, LOCAL_NODE_NAME, ensure_local_node, heartbeat, move_node_ips
from .pools import (
    assign_ip,
    default_pool_for,
    grant_pool,
    pause_ip,
    pause_unbindable_ip,
    remove_ip,
    resume_ip,
    revoke_pool_grant,
    set_default_pool,
)
from .reputation import compute_reputation, update_reputation, update_reputations
from .selection import (
    NoCapacity,
    Selection,
    flush_usage,
    record_outcomes,
    select_source_ip,
    usage_today,
    usage_today_many,
)
from .throttling import PairLimits, pair_limits, pair_state, rate_limited, record_successes, throttle_rules
from .warmup import (
    announce_capacity_change,
    day_outcomes,
    outcome_rates,
    save_warmup_plan,
    start_warmup,
    step_warmup,
    step_warmups,
    stop_warmup,
    warmup_schedule,
    warmup_status,
)

__all__ = [
    "DEFAULT_POOL_NAME",
    "LOCAL_IP",
    "LOCAL_NODE_NAME",
    "NoCapacity",
    "PairLimits",
    "Selection",
    "announce_capacity_change",
    "apply_listing_state",
    "assign_ip",
    "check_blocklists",
    "check_domain_blocklists",
    "check_ptr",
    "compute_reputation",
    "day_outcomes",
    "default_pool_for",
    "ensure_local_node",
    "flush_usage",
    "grant_pool",
    "heartbeat",
    "move_node_ips",
    "ip_event",
    "outcome_rates",
    "pair_limits",
    "pair_state",
    "pause_ip",
    "pause_unbindable_ip",
    "rate_limited",
    "record_outcomes",
    "record_successes",
    "remove_ip",
    "resume_ip",
    "revoke_pool_grant",
    "save_warmup_plan",
    "select_source_ip",
    "sending_domain_names",
    "set_default_pool",
    "start_warmup",
    "step_warmup",
    "step_warmups",
    "stop_warmup",
    "sweep_blocklists",
    "throttle_rules",
    "update_reputation",
    "update_reputations",
    "usage_today",
    "usage_today_many",
    "warmup_schedule",
    "warmup_status",
]
