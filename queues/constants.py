"""Named constants of the queues app: queue names, VERP format, limits that are not operator settings."""

DELIVERY_QUEUE_PREFIX = "delivery-"  # a node's delivery queue is "delivery-<node name>"
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

TEST_INBOX_PAGE_SIZE = 50
MESSAGE_PAGE_SIZE = 50
