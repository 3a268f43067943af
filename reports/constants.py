"""Named constants of the reports app."""

ARCHIVE_DIR = "data-requests"  # access archives, under MEDIA_ROOT
REPORT_DIR = "reports"  # compliance reports, under MEDIA_ROOT
MAX_SUBJECTS = 20  # addresses in one data-subject request
PDF_SUMMARY_ROWS = 200  # records of one section listed in an access archive's PDF summary (the JSON has them all)
PURGE_INTERVAL_SECONDS = 3600  # how often the retention purge runs
PURGE_RUNS_SHOWN = 20  # purge runs on the retention page

# Bulk-sender requirements of Gmail and Yahoo (February 2024): the rates a report compares a tenant against.
SPAM_RATE_LIMIT = 0.003  # complaints per delivered message: stay below 0.3 % (Google: ideally below 0.1 %)
SPAM_RATE_TARGET = 0.001
BOUNCE_RATE_LIMIT = 0.02  # hard bounces per attempted message: industry practice is to stay below 2 %
UNSUBSCRIBE_RATE_WATCH = 0.005  # unsubscribes per delivered message worth a look

# Monitoring: roll-ups, metrics, alerts.
ROLLUP_CURSORS = ("attempts", "events", "messages")  # the roll-up job's id watermarks (RollupCursor names)
# Accept → delivered latency histogram: the upper bounds (seconds) of the buckets, the last one open (+Inf).
LATENCY_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 86400)
LATENCY_FIELDS = ("lat_1s", "lat_5s", "lat_15s", "lat_1m", "lat_5m", "lat_15m", "lat_1h", "lat_4h", "lat_1d", "lat_inf")
REPLY_TEXT_MAX = 200  # characters of a sample reply text kept per reply roll-up key
ALERT_EVALUATION_SECONDS = 60  # the alert evaluation job runs every minute
ROLLUP_PRUNE_SECONDS = 3600  # old minute and hour roll-ups are deleted hourly
DASHBOARD_REFRESH_SECONDS = 30  # live dashboards poll their fragment this often (HTMX)
TOP_REPLIES = 10  # reply codes and texts on a dashboard
TOP_TENANTS = 10  # tenants by volume and by complaint rate on the platform dashboard
# Gmail and Yahoo bulk-sender thresholds drawn on the complaint chart (complaints / delivered).
COMPLAINT_RATE_TARGET = 0.001
COMPLAINT_RATE_LIMIT = 0.003
