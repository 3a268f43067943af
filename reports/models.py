"""Reports app: dashboards, metrics roll-ups, alert rules and deliverability exports.

Empty for now: the audit exports live in the core (`deliveryhub/exports.py`); roll-ups and alerts come with
their own issue.
"""
