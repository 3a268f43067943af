"""Models of the domains app: sending domains, their DKIM keys and their last DNS checks."""

from .dkim_keys import DkimKey
from .dns_records import DnsCheck
from .domains import SendingDomain, normalise_domain_name

__all__ = ["DkimKey", "DnsCheck", "SendingDomain", "normalise_domain_name"]
