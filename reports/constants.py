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
