"""Domain-level errors that services raise; the API's exception handler and the UI views turn them into answers.

Validation errors are Django's `ValidationError` (field-keyed: a 400 with field errors); the state of an object
that forbids a verb is a `Conflict` (409).
"""


class Conflict(Exception):
    """The request conflicts with the current state: a message that can no longer be cancelled, a used key, …"""
