"""Named constants of the queues app: queue names, VERP format, limits that are not operator settings."""

DELIVERY_QUEUE_PREFIX = "delivery-"  # a node's delivery queue is "delivery-<node name>"
DELIVER_BATCH_JOB = (
    "queues.delivery.worker.deliver_batch"  # the batch job, by name: the scheduler imports no worker code
)
VERP_LOCAL_PREFIX = "b"  # envelope sender local part: "b-<message uuid hex>"
VERP_SEPARATOR = "-"

LOCAL_PART_MAX = 64  # RFC 5321 4.5.3.1.1
DOMAIN_MAX = 255  # RFC 5321 4.5.3.1.2
PATH_MAX = 256  # RFC 5321 4.5.3.1.3 (forward-path including the angle brackets)
LABEL_MAX = 63  # RFC 1035
HEADER_LINE_MAX = 998  # RFC 5322 2.1.1: octets per line, excluding CRLF
LINE_SHOULD_MAX = 78  # RFC 5322 2.1.1: lines SHOULD be no longer (a longer text body goes quoted-printable)
HEADER_FOLD_AT = 76  # header lines we write are folded to this length where whitespace allows (RFC 2047 2)
FILENAME_MAX = 255  # characters in an attachment's file name
HEADER_VALUE_MAX = 4000  # characters in one custom header value (folded when sent)
HEADER_NAME_MAX = 76  # characters in a custom header name
CUSTOM_HEADERS_MAX = 50  # custom headers per message
SUBJECT_MAX = 998  # characters in a subject
TAG_MAX = 100  # characters in a tag
METADATA_MAX_BYTES = 10_000  # JSON size of a message's metadata
ENVELOPE_ADDRESS_MAX = 400  # characters in one envelope recipient of a raw message
IDEMPOTENCY_KEY_MAX = 200  # characters in an Idempotency-Key header

STATUS_DETAIL_MAX = 500  # characters of the last outcome text kept on the message row
ATTEMPT_TEXT_MAX = 1000  # characters of a reply text kept on an attempt
SCHEDULED_LEASE_PREFIX = "q:"  # lease_owner of rows handed to an RQ batch but not yet claimed by a worker
CLAIMED_LEASE_PREFIX = "w:"  # lease_owner of rows a worker is sending
PAIR_CONNECTIONS_KEY_PREFIX = "deliveryhub:queues:pair-connections:"  # + "<ip_id>:<provider>": connection slots (zset)
PAIR_RATE_KEY_PREFIX = "deliveryhub:queues:pair-rate:"  # + "<rule>:<ip_id>:<provider>": a message-rate token bucket
HOST_HEALTH_KEY_PREFIX = "deliveryhub:queues:host-health:"  # + "<host>:<port>": a destination host's circuit breaker

# status_detail of mail the scheduler holds because no IP has capacity now (the scheduler writes "<prefix>: <reason>")
CAPACITY_WAIT_PREFIX = "Waiting for sending capacity"

TEST_INBOX_PAGE_SIZE = 50
MESSAGE_PAGE_SIZE = 50

# Campaigns, contacts, imports (queues/campaigns/).
CONTACT_NAME_MAX = 200  # characters of a contact's name
ATTRIBUTE_NAME_MAX = 64  # characters of a custom field's name
ATTRIBUTE_VALUE_MAX = 1000  # characters of one custom field's value
ATTRIBUTES_MAX = 50  # custom fields per contact
IMPORT_CHUNK_ROWS = 20000  # CSV rows written per transaction (all or nothing per chunk; progress after each)
IMPORT_MAX_BYTES = 512 * 1024 * 1024  # largest CSV file accepted for an import
IMPORT_DIR = "imports"  # under MEDIA_ROOT: uploaded files and validation reports
TEST_SEND_MAX = 5  # addresses per test send
TEST_SUBJECT_PREFIX = "[Test] "
FANOUT_CHUNK_ROWS = 50000  # Message rows written per statement when a campaign starts
CAMPAIGN_PAGE_SIZE = 50
CONTACT_PAGE_SIZE = 50
SUPPRESSION_PAGE_SIZE = 50
UNSUBSCRIBE_LOCAL_PREFIX = "u"  # mailto local part of one-click unsubscribe: "u-<token>"
TOKEN_DIGEST_BYTES = 10  # HMAC bytes in an unsubscribe/tracking token (80 bits)
CLICK_DIGEST_BYTES = 10  # HMAC bytes signing a tracked link's target
# Pacing and the deliverability gate.
PACING_BURST_SECONDS = 2  # a paced campaign never has more than this many seconds of its rate waiting to go
BULK_SENDER_THRESHOLD = 5000  # recipients at Gmail/Yahoo/Microsoft from which the 2024 bulk-sender rules apply
GATE_MX_LOOKUPS_MAX = 200  # recipient domains whose MX the gate looks up to find their provider
COMPLAINT_WINDOW = 1000  # last deliveries over which a campaign's complaint rate is judged
COMPLAINT_RATE_MAX = 0.003  # above this complaint rate a sending campaign pauses itself
CAMPAIGN_MONITOR_SECONDS = 5  # how often scheduled campaigns start, finished ones close, complaint rates are checked
SUPPRESSION_EXPIRY_SECONDS = 3600  # how often expired suppressions are removed
# Opens fetched by mail privacy proxies, not by people (Apple Mail Privacy Protection prefetches every image).
PRIVACY_PROXY_NETWORKS = ("17.0.0.0/8",)  # Apple's egress ranges for Mail Privacy Protection
PRIVACY_PROXY_USER_AGENTS = ()  # substrings of User-Agent headers of prefetching proxies (none known beyond IPs)
# The header that names one recipient's message in what we send (`X-DeliveryHub-Message: <message uuid>`): feedback
# loops quote it back. The delivery engine adds it when it renders a message (see docs/webhooks.md).
MESSAGE_HEADER = "X-DeliveryHub-Message"
