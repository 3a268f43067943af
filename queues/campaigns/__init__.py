"""Campaigns for marketers: contacts and lists, CSV imports, sandboxed templates, campaigns with pacing, one-click
unsubscribe and tracking, the suppression centre and the deliverability gate.

The models live in `queues/models/{contacts,campaigns}.py`; this package holds the verbs (`contacts`, `imports`,
`services`, `fanout`, `gate`, `pacing`), the pieces the delivery worker calls (`rendering`, `tokens`), the public
endpoints (`public`) and the panel and API on top of them.
"""
