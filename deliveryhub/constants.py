"""Named constants of the core: key prefixes, queue names, lock keys."""

API_KEY_PREFIX_LIVE = "dh_live_"  # a key with a role or the send scope
API_KEY_PREFIX_READONLY = "dh_ro_"  # a read-only key
API_KEY_PREFIX_PLATFORM = "dh_op_"  # an operator key that belongs to no tenant
API_KEY_LOOKUP_LENGTH = 8  # characters after the prefix stored in clear for lookup

QUEUE_DELIVERY = "delivery"
QUEUE_DEFAULT = "default"
QUEUE_LOW = "low"

AUDIT_GENESIS_HASH = "0" * 64  # prev_hash of the first audit entry

SESSION_TENANT_KEY = "deliveryhub.tenant_id"
SESSION_OTP_SUDO_KEY = "deliveryhub.otp_verified_at"

SCHEDULER_LOCK_PREFIX = "deliveryhub:scheduler:"  # Redis keys that stop two schedulers enqueueing the same job
