"""Named numbers and strings of the domains app (RFC limits, record prefixes, key sizes)."""

DEFAULT_RETURN_PATH_SUBDOMAIN = "bounces"  # return-path (bounce) host below the domain
VERIFICATION_TXT_PREFIX = "dh-verification="  # ownership proof TXT at the domain apex
VERIFICATION_TOKEN_BYTES = 24  # entropy of an ownership token

# DKIM keys.
RSA_DEFAULT_BITS = 2048
RSA_MIN_BITS = 2048  # smaller keys are refused for new keys
RSA_ALLOWED_BITS = (2048, 3072, 4096)
RSA_PUBLIC_EXPONENT = 65537
DKIM_SELECTOR_PREFIX = "dh"  # selectors look like dh20250101r, dh20250101e
DKIM_TXT_STRING_MAX = 255  # bytes per character-string in a TXT record (RFC 1035 §3.3)

# SPF (RFC 7208).
SPF_MAX_DNS_LOOKUPS = 10  # §4.6.4: include, a, mx, ptr, exists, redirect
SPF_MAX_VOID_LOOKUPS = 2  # §4.6.4: lookups answering NXDOMAIN or nothing
SPF_MAX_MX_HOSTS = 10  # §4.6.4: addresses looked up per mx mechanism
SPF_MAX_DEPTH = 10  # include/redirect nesting we follow before calling it a loop

# DMARC (RFC 7489).
DMARC_TAGS = {"v", "p", "sp", "pct", "adkim", "aspf", "rua", "ruf", "fo", "rf", "ri", "np", "psd", "t"}
DMARC_URI_SCHEMES = ("mailto:", "https:", "http:")

# MTA-STS and TLS-RPT (RFC 8461, RFC 8460).
MTA_STS_POLICY_LABEL = "mta-sts"
MTA_STS_TXT_LABEL = "_mta-sts"
TLS_RPT_LABEL = "_smtp._tls"

ZONE_SNIPPET_TTL = 3600  # TTL written in the zone-file snippet
FEEDBACK_LOCAL_PART = "fbl"  # a domain's default feedback-loop address: fbl@<return-path host>
DMARC_REPORT_LOCAL_PART = "dmarc"  # DMARC aggregate reports are always taken at dmarc@<return-path host>
DMARC_REPORT_MAX_BYTES = 20 * 1024 * 1024  # largest DMARC report file (after decompression) we parse
DMARC_RECORDS_MAX = 100000  # rows of one aggregate report we keep
