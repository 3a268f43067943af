"""Configuration backup of the queues app: routes (relay passwords still encrypted), suppression lists, bounce
rules, SMTP submission logins (their password digests: valid where DELIVERYHUB_API_KEY_PEPPER is the same), contact
lists and campaign definitions. Messages are never part of a backup: a restore sends nothing."""

from deliveryhub import backup

from .choices import CampaignState
from .models import BounceRule, Campaign, ContactList, Route, SmtpCredential, Suppression

backup.register(backup.Section(
    "queues.routes", Route, order=60, key=None,
    fields=("tenant", "pattern", "host", "port", "username", "tls_required", "priority", "enabled"),
    refs={"tenant": "core.tenants"}, secrets=("password",),
))  # fmt: skip
backup.register(backup.Section("queues.suppressions", Suppression, order=61, key=("tenant", "address"),
                               fields=("reason", "source"), refs={"tenant": "core.tenants"}, bulk=True))  # fmt: skip
backup.register(backup.Section(
    "queues.bounce_rules", BounceRule, order=62, key=None,
    fields=("tenant", "priority", "code", "enhanced", "text", "category", "action", "enabled", "description"),
    refs={"tenant": "core.tenants"},
))  # fmt: skip
backup.register(backup.Section(
    "queues.smtp_credentials", SmtpCredential, order=63, key=("username",),
    fields=("tenant", "password_digest", "description", "is_active"), refs={"tenant": "core.tenants"},
))  # fmt: skip


# Campaigns: their definitions (content, lists, schedule, pacing), never their sends. Contacts are data, not
# configuration: a database backup carries them (docs/operations.md).
def _hold_unfinished(campaign, row, options):
    """A restored campaign never sends by itself: one that was scheduled, sending or paused comes back paused
    (`--scheduled paused`) or not at all (`--scheduled skip`); drafts and finished campaigns come back as they were."""
    if campaign.state not in (CampaignState.SCHEDULED, CampaignState.SENDING, CampaignState.PAUSED):
        return True
    if options.scheduled == "skip":
        return False
    if campaign.state != CampaignState.PAUSED or not campaign.state_detail:
        campaign.state = CampaignState.PAUSED
        campaign.state_detail = RESTORED_DETAIL
    return True


RESTORED_DETAIL = ("Restored from a configuration archive: its messages were not part of it, so nothing of it is "
                   "sent. Duplicate it as a new campaign to send it again.")  # fmt: skip

backup.register(backup.Section("queues.contact_lists", ContactList, order=64, key=("tenant", "name"),
                               fields=("description", "opt_in"), refs={"tenant": "core.tenants"}))  # fmt: skip
backup.register(backup.Section(
    "queues.campaigns", Campaign, order=65, key=("uuid",),
    fields=("tenant", "name", "subject", "from_header", "sending_domain", "reply_to", "html", "text", "ip_pool",
            "send_at", "rate_per_hour", "finish_by", "track_opens", "track_clicks", "unsubscribe_suppresses", "tag",
            "state", "state_detail"),
    refs={"tenant": "core.tenants", "sending_domain": "domains.sending_domains", "ip_pool": "ippools.pools"},
    on_restore=_hold_unfinished,
))  # fmt: skip
backup.register(backup.Section(
    "queues.campaign_lists", Campaign.lists.through, order=66, key=("campaign", "contactlist"), fields=(),
    refs={"campaign": "queues.campaigns", "contactlist": "queues.contact_lists"},
))  # fmt: skip
