"""Enumerations of the IP pools app, with their badge colours beside them."""

from django.db import models


class NodeStatus(models.TextChoices):
    """An admin's intent for a delivery node; whether it is alive comes from its heartbeat."""

    ACTIVE = "active", "Active"
    DRAINING = "draining", "Draining"  # finishes in-flight work, gets no new batches
    DISABLED = "disabled", "Disabled"


NODE_STATUS_BADGES = {NodeStatus.ACTIVE: "success", NodeStatus.DRAINING: "warning", NodeStatus.DISABLED: "secondary"}


class IPState(models.TextChoices):
    """Where a source IP stands. Only `active` and `warming` IPs send."""

    ACTIVE = "active", "Active"
    WARMING = "warming", "Warming up"
    PAUSED = "paused", "Paused"
    BLOCKED = "blocked", "Blocked"
    RETIRED = "retired", "Retired"


SENDING_IP_STATES = frozenset({IPState.ACTIVE, IPState.WARMING})

IP_STATE_BADGES = {
    IPState.ACTIVE: "success",
    IPState.WARMING: "info",
    IPState.PAUSED: "warning",
    IPState.BLOCKED: "danger",
    IPState.RETIRED: "secondary",
}


class PTRStatus(models.TextChoices):
    """Reverse DNS of an IP: a PTR whose name resolves back to the IP (FCrDNS) is `ok`."""

    UNKNOWN = "unknown", "Not checked"
    OK = "ok", "FCrDNS ok"
    MISMATCH = "mismatch", "PTR does not resolve back"
    MISSING = "missing", "No PTR"


PTR_STATUS_BADGES = {
    PTRStatus.UNKNOWN: "secondary",
    PTRStatus.OK: "success",
    PTRStatus.MISMATCH: "warning",
    PTRStatus.MISSING: "danger",
}


class PoolPurpose(models.TextChoices):
    TRANSACTIONAL = "transactional", "Transactional"
    MARKETING = "marketing", "Marketing"
    OTHER = "other", "Other"


class Provider(models.TextChoices):
    """A destination mailbox provider: warm-up caps and throttles are kept per provider."""

    GOOGLE = "google", "Google"
    MICROSOFT = "microsoft", "Microsoft"
    YAHOO = "yahoo", "Yahoo"
    OTHER = "other", "Other"


class BlocklistKind(models.TextChoices):
    IP = "ip", "IP addresses"
    DOMAIN = "domain", "Domains"


class ListingStatus(models.TextChoices):
    """The interpreted answer of one blocklist for one IP or domain."""

    LISTED = "listed", "Listed"
    CLEAR = "clear", "Not listed"
    ERROR = "error", "Error answer"  # 127.255.255.x and the like: the zone refused to answer us
    UNKNOWN = "unknown", "Unknown"  # timeout / SERVFAIL: retried


LISTING_STATUS_BADGES = {
    ListingStatus.LISTED: "danger",
    ListingStatus.CLEAR: "success",
    ListingStatus.ERROR: "warning",
    ListingStatus.UNKNOWN: "secondary",
}


class IPEventKind(models.TextChoices):
    WARMUP_START = "warmup.start", "Warm-up started"
    WARMUP_ADVANCE = "warmup.advance", "Warm-up advanced"
    WARMUP_HOLD = "warmup.hold", "Warm-up held"
    WARMUP_STEP_BACK = "warmup.step_back", "Warm-up stepped back"
    WARMUP_COMPLETE = "warmup.complete", "Warm-up complete"
    WARMUP_STOP = "warmup.stop", "Warm-up stopped"
    LISTED = "blocklist.listed", "Listed on a blocklist"
    DELISTED = "blocklist.delisted", "Delisted"
    PAUSED = "ip.paused", "Paused"
    RESUMED = "ip.resumed", "Resumed"
    # Adaptive throttling of one (IP, provider) pair: IP events, not audit entries (no configuration changed).
    THROTTLE_SLOWED = "throttle.slowed", "Rate limited: slowed and suspended"
    THROTTLE_EASED = "throttle.eased", "Throttle eased"
    THROTTLE_RESTORED = "throttle.restored", "Throttle restored to full speed"


# The audit log action of each IP event.
IP_EVENT_AUDIT_ACTIONS = {
    IPEventKind.WARMUP_START: "ip.warmup_start",
    IPEventKind.WARMUP_ADVANCE: "ip.warmup_advance",
    IPEventKind.WARMUP_HOLD: "ip.warmup_hold",
    IPEventKind.WARMUP_STEP_BACK: "ip.warmup_step_back",
    IPEventKind.WARMUP_COMPLETE: "ip.warmup_complete",
    IPEventKind.WARMUP_STOP: "ip.warmup_stop",
    IPEventKind.LISTED: "ip.listed",
    IPEventKind.DELISTED: "ip.delisted",
    IPEventKind.PAUSED: "ip.pause",
    IPEventKind.RESUMED: "ip.resume",
}
