"""The RQ entry point never raises: whatever fails, the job ends and the worker takes the next one."""

import logging

import pytest

from queues.delivery.worker import deliver_batch


@pytest.mark.django_db
def test_a_batch_whose_claim_fails_ends_quietly(caplog):
    """A claim that cannot run (here: ids a newer or broken scheduler wrote in another shape) is logged; the rows, if
    any, stay with their schedule lease and the scheduler hands them out again."""
    with caplog.at_level(logging.ERROR, logger="queues.delivery.worker"):
        assert deliver_batch("q:broken", ["not-an-id"]) == 0
    assert "claiming its rows failed" in caplog.text
