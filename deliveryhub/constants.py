"""Named constants of the core: key prefixes, queue names, lock keys."""

API_KEY_PREFIX_LIVE = "dh_live_"  # a key with a role or the send scope
API_KEY_PREFIX_READONLY = "dh_ro_"  # a read-only key
API_KEY_PREFIX_PLATFORM = "dh_op_"  # an operator key that belongs to no tenant
API_KEY_LOOKUP_LENGTH = 8  # characters after the prefix stored in clear for lookup

QUEUE_DELIVERY = "delivery"
QUEUE_DEFAULT = "default"
QUEUE_LOW = "low"

DATABASE_RETRY_AFTER_SECONDS = 5  # Retry-After of the 503 answered while the database is unreachable

AUDIT_GENESIS_HASH = "0" * 64  # prev_hash of the first audit entry

SESSION_TENANT_KEY = "deliveryhub.tenant_id"
SESSION_OTP_SUDO_KEY = "deliveryhub.otp_verified_at"
SESSION_STARTED_KEY = "deliveryhub.signed_in_at"  # time.time() of the sign-in (absolute session limit)
SESSION_SEEN_KEY = "deliveryhub.last_activity_at"  # time.time() of the last activity (idle limit)
SESSION_TOUCH_SECONDS = 60  # activity refreshes the idle timer at most this often (one session write a minute)

SCHEDULER_LOCK_PREFIX = "deliveryhub:scheduler:"  # Redis keys that stop two schedulers enqueueing the same job

# Authentication (deliveryhub/throttle.py, deliveryhub/otp.py).
SESSION_OTP_PENDING_KEY = "deliveryhub.otp_pending"  # password accepted, second factor still to come
OTP_RECOVERY_CODE_COUNT = 10  # recovery codes issued at enrolment and on regeneration
OTP_TOTP_DEVICE_NAME = "Authenticator app"
OTP_RECOVERY_DEVICE_NAME = "Recovery codes"
JSON_MAX_DEPTH = 32  # levels of nesting an API request body may have (deeper is a 400)
API_KEY_LAST_USED_EVERY = 60  # seconds: a key's last_used (and address) is written at most this often
