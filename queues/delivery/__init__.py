"""The delivery engine: scheduler, lease, destination, processor, worker, senders, classifier, DKIM, MX resolution
(docs/delivery.md walks the path from intake to the receiving server)."""
