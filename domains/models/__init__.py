"""Models of the domains app: sending domains, their DKIM keys, their last DNS checks and DMARC aggregate reports."""

from .dkim_keys import DkimKey
from .dmarc_reports import DmarcRecord, DmarcReport
from .dns_records import DnsCheck
from .domains import SendingDomain, normalise_domain_name

__all__ = ["DkimKey", "DmarcRecord", "DmarcReport", "DnsCheck", "SendingDomain", "normalise_domain_name"]
