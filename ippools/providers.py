"""Which mailbox provider a recipient domain belongs to, by its name or its MX hosts."""

from .choices import Provider

PROVIDER_DOMAINS = {
    Provider.GOOGLE: frozenset({"gmail.com", "googlemail.com"}),
    Provider.MICROSOFT: frozenset({"outlook.com", "hotmail.com", "live.com", "msn.com"}),
    Provider.YAHOO: frozenset({"yahoo.com", "aol.com", "ymail.com"}),
}
# National variants (hotmail.co.uk, yahoo.fr, live.de): the brand label before the public suffix.
PROVIDER_BRANDS = {
    Provider.MICROSOFT: frozenset({"outlook", "hotmail", "live", "msn"}),
    Provider.YAHOO: frozenset({"yahoo", "aol", "ymail"}),
    Provider.GOOGLE: frozenset({"googlemail"}),
}
PROVIDER_MX_SUFFIXES = {
    Provider.GOOGLE: ("google.com", "googlemail.com"),
    Provider.MICROSOFT: ("outlook.com", "protection.outlook.com", "hotmail.com"),
    Provider.YAHOO: ("yahoodns.net",),
}


def _normalise(name):
    return (name or "").strip().rstrip(".").lower()


def _brand(domain):
    """'hotmail' for hotmail.co.uk / hotmail.fr; None for longer names (mail.hotmail.evil.test)."""
    labels = domain.split(".")
    if len(labels) == 2 or (len(labels) == 3 and len(labels[-1]) == 2 and len(labels[-2]) <= 3):
        return labels[0]
    return None


def provider_for(domain, mx_hosts=()):
    """The provider of a recipient domain (google, microsoft, yahoo or other), from the domain or its MX hosts."""
    domain = _normalise(domain)
    for provider, names in PROVIDER_DOMAINS.items():
        if domain in names:
            return provider
    brand = _brand(domain)
    for provider, brands in PROVIDER_BRANDS.items():
        if brand in brands:
            return provider
    for host in mx_hosts or ():
        host = _normalise(host)
        for provider, suffixes in PROVIDER_MX_SUFFIXES.items():
            if any(host == suffix or host.endswith("." + suffix) for suffix in suffixes):
                return provider
    return Provider.OTHER
