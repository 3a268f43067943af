"""Named constants of the IP pools app: Redis keys, blocklist answer codes, reputation weights, warm-up ramps."""

# -- Redis -------------------------------------------------------------------------------------------------------------
USAGE_KEY_PREFIX = "deliveryhub:ippools:usage:"  # + "<ip_id>:<YYYY-MM-DD>:<provider|total>" (or ":h<HH>:" hourly)
USAGE_DIRTY_SET_PREFIX = "deliveryhub:ippools:usage-dirty:"  # + date: keys written since the last flush
USAGE_KEY_TTL_SECONDS = 3 * 86400  # a day's counter outlives its day (time zones, late flushes)
HOURLY_KEY_TTL_SECONDS = 2 * 3600
TOTAL = "total"  # the pseudo-provider of an IP's all-provider daily counter
THROTTLE_KEY_PREFIX = "deliveryhub:ippools:throttle:"  # + "<ip_id>:<provider>": a pair's adaptive state (hash)
THROTTLE_KEY_TTL_SECONDS = 86400  # an untouched pair's state is dropped (the database keeps slowed pairs)
RATE_KEY_PREFIX = "deliveryhub:ippools:rate:"  # + "<rule_id>:<ip_id>:<provider>:<m|h><window>": throttle-rule counters
RATE_MINUTE_KEY_TTL_SECONDS = 120
RATE_HOUR_KEY_TTL_SECONDS = 2 * 3600

# -- Blocklists --------------------------------------------------------------------------------------------------------
SPAMHAUS_ZEN = "zen.spamhaus.org"
SPAMHAUS_DBL = "dbl.spamhaus.org"
SPAMHAUS_DQS_ZONES = {SPAMHAUS_ZEN: "zen.dq.spamhaus.net", SPAMHAUS_DBL: "dbl.dq.spamhaus.net"}

# Listing codes and their meaning, per zone (returned as A records of the query name).
ZONE_CODES = {
    SPAMHAUS_ZEN: {
        "127.0.0.2": "SBL: Spamhaus SBL data (known spam source)",
        "127.0.0.3": "SBL CSS: snowshoe or low-reputation sender",
        "127.0.0.4": "XBL: exploited host (CBL)",
        "127.0.0.9": "SBL DROP/EDROP: hijacked netblock",
        "127.0.0.10": "PBL: ISP-maintained end-user range",
        "127.0.0.11": "PBL: Spamhaus-maintained end-user range",
    },
    "b.barracudacentral.org": {"127.0.0.2": "Barracuda Reputation Block List"},
    "bl.spamcop.net": {"127.0.0.2": "SpamCop: reported as a spam source"},
    SPAMHAUS_DBL: {
        "127.0.1.2": "DBL: spam domain",
        "127.0.1.4": "DBL: phishing domain",
        "127.0.1.5": "DBL: malware domain",
        "127.0.1.6": "DBL: botnet C&C domain",
        "127.0.1.102": "DBL: abused legit spam",
        "127.0.1.103": "DBL: abused spammed redirector",
        "127.0.1.104": "DBL: abused legit phish",
        "127.0.1.105": "DBL: abused legit malware",
        "127.0.1.106": "DBL: abused legit botnet C&C",
    },
}

# Answers that are errors, never listings (Spamhaus: 127.255.255.252 typo, .254 public resolver, .255 over limit).
ERROR_CODE_PREFIXES = ("127.255.255.",)
ERROR_CODES = {
    "127.0.1.255": "DBL: IP queries are not supported",
    "127.255.255.252": "Typing error in the DNSBL name",
    "127.255.255.254": "Query via a public/open resolver (use your own resolver or a DQS key)",
    "127.255.255.255": "Excessive number of queries",
}
# An unrecognised answer inside these networks is still read as a listing; anything else is an error.
LISTING_NETWORKS = ("127.0.0.0/16",)

# -- Reputation --------------------------------------------------------------------------------------------------------
REPUTATION_MAX = 100
REPUTATION_MIN = 0
REPUTATION_GOOD = 80  # at or above: a green badge
REPUTATION_FAIR = 50  # at or above: a yellow badge; below: red
REPUTATION_BOUNCE_WEIGHT = 400  # points per unit bounce rate (5% costs 20)
REPUTATION_BOUNCE_MAX_PENALTY = 40
REPUTATION_DEFERRAL_WEIGHT = 100  # 20% deferrals cost 20
REPUTATION_DEFERRAL_MAX_PENALTY = 25
REPUTATION_COMPLAINT_WEIGHT = 20000  # 0.1% complaints cost 20
REPUTATION_COMPLAINT_MAX_PENALTY = 40
REPUTATION_LISTING_PENALTY = 30  # per listing blocklist
REPUTATION_LISTING_MAX_PENALTY = 60

# -- Warm-up -----------------------------------------------------------------------------------------------------------
WARMUP_SEVERE_FACTOR = 2  # a rate at least this many times its threshold steps back instead of holding
# Shipped ramps: (name, description, start per provider, daily growth factors by day range, target per provider, days).
WARMUP_DEFAULT_PLANS = (
    (
        "Standard (30 days)",
        "Starts at 50/day per provider, doubles for a week, then grows about 1.35x a day to 500,000/day per "
        "provider (2,000,000/day in all), reached around day 24 and held to day 30.",
        50,
        ((6, 2.0), (None, 1.35)),
        500_000,
        30,
    ),
    (
        "Gentle (45 days)",
        "Starts at 50/day per provider, grows 1.5x a day for a week and then 1.25x a day to 250,000/day per "
        "provider (1,000,000/day in all), reached around day 34 and held to day 45.",
        50,
        ((7, 1.5), (None, 1.25)),
        250_000,
        45,
    ),
)
