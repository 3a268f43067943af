"""Models of the IP pools app: delivery nodes, source IPs, pools, warm-up plans, usage counters, blocklists,
throttle rules and adaptive throttle state."""

from .addresses import IPAddress, IPEvent, ReputationSample
from .blocklists import BlocklistCheck, BlocklistZone
from .nodes import DeliveryNode
from .pools import IPPool, IPPoolGrant, IPPoolMember, TenantDefaultPool
from .throttles import ThrottleRule, ThrottleState
from .warmup import IPDailyUsage, WarmupPlan

__all__ = [
    "BlocklistCheck",
    "BlocklistZone",
    "DeliveryNode",
    "IPAddress",
    "IPDailyUsage",
    "IPEvent",
    "IPPool",
    "IPPoolGrant",
    "IPPoolMember",
    "ReputationSample",
    "TenantDefaultPool",
    "ThrottleRule",
    "ThrottleState",
    "WarmupPlan",
]
