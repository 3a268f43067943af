"""Events and webhooks for applications: the gap-free event stream (`stream`), guarded HTTP delivery (`http`), the
dispatcher and its retries (`dispatch`), the verbs (`services`), and the API and panel on top of them.

The models live in `queues/models/webhooks.py`. Nothing here is imported by the models except `http.check_url`.
"""
