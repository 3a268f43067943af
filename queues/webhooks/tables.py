"""Tables of the webhooks, events, feedback reports and SMTP credentials pages."""

import django_tables2 as tables

from deliveryhub.tables import ActionsColumn, BoolColumn

from ..choices import KIND_EVENT_TYPE
from ..models import FeedbackReport, SmtpCredential, StreamEntry, Webhook


class WebhookTable(tables.Table):
    url = tables.Column(linkify=True, verbose_name="URL")
    events = tables.Column(verbose_name="Events", orderable=False)
    state = tables.TemplateColumn('<span class="badge text-bg-{{ record.state_badge }}">{{ record.state }}</span>',
                                  orderable=False)  # fmt: skip
    last_success_at = tables.DateTimeColumn(format="Y-m-d H:i:s", verbose_name="Last success", default="—")
    description = tables.Column()

    class Meta:
        model = Webhook
        fields = ["url", "events", "state", "last_success_at", "description"]
        attrs = {"id": "webhook-table", "class": "table table-sm table-hover align-middle mb-0"}

    def render_events(self, value):
        return ", ".join(value) if value else "every type"

    def value_state(self, record):
        return record.state


class EventTable(tables.Table):
    position = tables.Column(verbose_name="#")
    time = tables.DateTimeColumn(format="Y-m-d H:i:s", orderable=False)
    kind = tables.Column(verbose_name="Type", orderable=False)
    recipient = tables.Column(accessor="message__rcpt_to", orderable=False, verbose_name="Recipient",
                              linkify=lambda record: record.message.get_absolute_url())  # fmt: skip
    tag = tables.Column(accessor="message__tag", orderable=False)
    detail = tables.Column(accessor="event__detail", orderable=False)

    class Meta:
        model = StreamEntry
        fields = ["position", "time", "kind", "recipient", "tag", "detail"]
        attrs = {"id": "event-table", "class": "table table-sm table-hover align-middle mb-0"}
        orderable = False

    def render_kind(self, value):
        return KIND_EVENT_TYPE.get(value, value)

    def render_detail(self, value):
        return value[:100]


class FeedbackReportTable(tables.Table):
    received = tables.DateTimeColumn(format="Y-m-d H:i:s")
    sending_domain = tables.Column(verbose_name="Domain")
    reporter = tables.Column()
    feedback_type = tables.Column(verbose_name="Type")
    matched = tables.TemplateColumn(
        '{% if record.message %}<a href="{{ record.message.get_absolute_url }}">{{ record.message.rcpt_to }}</a> '
        '<span class="text-secondary small">({{ record.matched_by }})</span>'
        '{% else %}<span class="badge text-bg-warning">unmatched</span>{% endif %}', orderable=False,
    )  # fmt: skip
    original_message_id = tables.Column(verbose_name="Original Message-ID")

    class Meta:
        model = FeedbackReport
        fields = ["received", "sending_domain", "reporter", "feedback_type", "matched", "original_message_id"]
        attrs = {"id": "feedback-table", "class": "table table-sm table-hover align-middle mb-0"}

    def value_matched(self, record):
        return record.message.rcpt_to if record.message else "unmatched"


class SmtpCredentialTable(tables.Table):
    username = tables.Column(linkify=True, verbose_name="User name")
    description = tables.Column()
    allowed_from_domains = tables.Column(verbose_name="From domains", orderable=False)
    allowed_networks = tables.Column(verbose_name="Networks", orderable=False)
    is_active = BoolColumn(verbose_name="Active")
    last_used = tables.DateTimeColumn(format="Y-m-d H:i:s", default="never")
    actions = ActionsColumn("queues/_smtp_credential_actions.html")

    class Meta:
        model = SmtpCredential
        fields = ["username", "description", "allowed_from_domains", "allowed_networks", "is_active", "last_used"]
        attrs = {"id": "smtp-credential-table", "class": "table table-sm table-hover align-middle mb-0"}

    def render_allowed_from_domains(self, value):
        return ", ".join(value) if value else "any"

    def render_allowed_networks(self, value):
        return ", ".join(value) if value else "anywhere"
