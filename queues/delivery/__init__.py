"""The delivery engine: dequeuer, processor, senders, classifier, DKIM, MX resolution."""
