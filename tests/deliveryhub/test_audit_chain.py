"""The audit log is tamper-evident: `verify_audit_log` finds edits, removals and reordering; writers form one chain."""

import io
import threading
import time

from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError, connection
from django.test import TestCase, TransactionTestCase

from deliveryhub import audit, services
from deliveryhub.audit import verify_chain
from deliveryhub.models import AuditEntry

TABLE = AuditEntry._meta.db_table
WRITERS = 4
ENTRIES_PER_WRITER = 25
SQLITE_LOCKED_RETRIES = 500  # see record_retrying_sqlite_lock
SQLITE_LOCKED_PAUSE = 0.002  # seconds


def verify():
    """Run the command: (exit code, output)."""
    out = io.StringIO()
    try:
        call_command("verify_audit_log", stdout=out)
    except CommandError as exc:
        return exc.returncode, str(exc)
    return 0, out.getvalue()


def record_retrying_sqlite_lock(*args, **kwargs):
    """`audit.record`, retried when the test SQLite database answers "table is locked".

    Django's SQLite test database is a shared-cache in-memory database; shared-cache locks fail at
    once (SQLITE_LOCKED) instead of waiting like file locks do (busy timeout), so on SQLite a writer
    whose whole transaction was refused tries again. On PostgreSQL writers wait on the chain head's
    row lock and nothing is retried.
    """
    for _ in range(SQLITE_LOCKED_RETRIES):
        try:
            return audit.record(*args, **kwargs)
        except OperationalError as exc:
            if connection.vendor != "sqlite" or "locked" not in str(exc):
                raise
            time.sleep(SQLITE_LOCKED_PAUSE)
    raise AssertionError("SQLite stayed locked")


def raw_sql(sql, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


class AuditChainTest(TestCase):
    def setUp(self):
        self.tenant = services.create_tenant("chain", "Chain Ltd")
        for n in range(6):
            audit.record("test.event", tenant=self.tenant, message=f"event {n}", postchange={"n": n})
        self.seqs = list(AuditEntry.objects.order_by("seq").values_list("seq", flat=True))
        self.count = len(self.seqs)

    def test_intact_chain_exits_zero(self):
        code, output = verify()
        self.assertEqual(code, 0)
        self.assertIn(f"Audit chain intact: {self.count} entries verified.", output)

    def test_edited_message_is_named(self):
        target = self.seqs[3]
        raw_sql(f"UPDATE {TABLE} SET message = %s WHERE seq = %s", ["nothing happened here", target])
        code, output = verify()
        self.assertEqual(code, 1)
        self.assertIn(f"#{target}", output)
        self.assertIn("does not match its hash", output)

    def test_edited_and_rehashed_entry_breaks_the_next_link(self):
        target = self.seqs[2]
        entry = AuditEntry.objects.get(seq=target)
        entry.message = "forged"
        raw_sql(f"UPDATE {TABLE} SET message = %s, hash = %s WHERE seq = %s", ["forged", entry.compute_hash(), target])
        code, output = verify()
        self.assertEqual(code, 1)
        self.assertIn(f"#{target + 1}", output)

    def test_deleted_middle_entry_is_named(self):
        target = self.seqs[2]
        raw_sql(f"DELETE FROM {TABLE} WHERE seq = %s", [target])
        code, output = verify()
        self.assertEqual(code, 1)
        self.assertIn(f"#{target}", output)
        self.assertIn("missing", output)

    def test_deleted_last_entry_is_detected(self):
        last = self.seqs[-1]
        raw_sql(f"DELETE FROM {TABLE} WHERE seq = %s", [last])
        code, output = verify()
        self.assertEqual(code, 1)
        self.assertIn(f"#{last}", output)
        self.assertIn("removed", output)

    def test_swapped_entries_are_detected(self):
        a, b = self.seqs[1], self.seqs[4]
        raw_sql(f"UPDATE {TABLE} SET seq = -1 WHERE seq = %s", [a])
        raw_sql(f"UPDATE {TABLE} SET seq = %s WHERE seq = %s", [a, b])
        raw_sql(f"UPDATE {TABLE} SET seq = %s WHERE seq = -1", [b])
        code, output = verify()
        self.assertEqual(code, 1)
        self.assertIn(f"#{a}", output)
        self.assertFalse(verify_chain().ok)

    def test_orm_cannot_update_or_delete_entries(self):
        entry = AuditEntry.objects.get(seq=self.seqs[0])
        entry.message = "changed"
        with self.assertRaises(ValidationError):
            entry.save()
        with self.assertRaises(ValidationError):
            entry.delete()
        with self.assertRaises(ValidationError):
            AuditEntry.objects.filter(seq=self.seqs[0]).update(message="changed")
        with self.assertRaises(ValidationError):
            AuditEntry.objects.all().delete()
        self.assertEqual(verify()[0], 0)


class ConcurrentWritersTest(TransactionTestCase):
    """Four threads, each with its own database connection, append 25 entries each: one chain of 100."""

    def test_concurrent_writers_form_one_contiguous_chain(self):
        start = AuditEntry.objects.count()
        barrier = threading.Barrier(WRITERS)
        errors = []

        def writer(n):
            try:
                barrier.wait()
                for i in range(ENTRIES_PER_WRITER):
                    record_retrying_sqlite_lock("test.concurrent", message=f"writer {n} entry {i}")
            except Exception as exc:  # reported below; a thread's exception would otherwise vanish
                errors.append(repr(exc))
            finally:
                connection.close()

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        self.assertEqual(errors, [])
        seqs = list(AuditEntry.objects.order_by("seq").values_list("seq", flat=True))
        self.assertEqual(len(seqs), start + WRITERS * ENTRIES_PER_WRITER)
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)))
        for n in range(WRITERS):
            mine = AuditEntry.objects.filter(message__startswith=f"writer {n} ").count()
            self.assertEqual(mine, ENTRIES_PER_WRITER)
        report = verify_chain()
        self.assertTrue(report.ok, str(report))
        self.assertEqual(report.checked, len(seqs))
        self.assertEqual(verify()[0], 0)
