"""While the database cannot be reached, the API answers 503 with Retry-After in its JSON error format and the panel
a 503 page — never a 500. The database really is unreachable here: the connection points at a file that cannot be
opened (SQLite) or at a closed port (PostgreSQL)."""

import socket
from contextlib import contextmanager

from django.db import connections
from django.test import Client, TestCase

from deliveryhub.testing.cases import TenantTestCase, login_verified


def _closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def unreachable_database():
    original = connections["default"]
    broken = connections.create_connection("default")
    if original.vendor == "sqlite":
        broken.settings_dict = {**original.settings_dict, "NAME": "/nonexistent/directory/db.sqlite3"}
    else:
        broken.settings_dict = {**original.settings_dict, "HOST": "127.0.0.1", "PORT": str(_closed_port())}
    connections["default"] = broken
    try:
        yield
    finally:
        connections["default"] = original
        broken.close()


class DatabaseUnavailableTest(TenantTestCase):
    def test_api_answers_503_with_retry_after_in_the_error_format(self):
        client = self.api(self.alice_key)
        with unreachable_database():
            response = client.get("/api/v1/messages/")
            posted = client.post("/api/v1/messages/", {"from": "a@mail-a.test", "to": ["b@example.com"],
                                                       "subject": "x", "text": "y"}, format="json")  # fmt: skip
        for answer in (response, posted):
            self.assertEqual(answer.status_code, 503, answer.content)
            self.assertEqual(answer["Retry-After"], "5")
            self.assertEqual(answer.json()["error"]["code"], "database_unavailable")

    def test_panel_answers_503(self):
        client = Client(raise_request_exception=False)  # as in production: the error reaches handler500
        login_verified(client, self.alice)  # the session is read from the database on every request
        with unreachable_database():
            response = client.get("/")
        self.assertEqual(response.status_code, 503)
        self.assertEqual(response["Retry-After"], "5")
        self.assertIn(b"unreachable", response.content)


class ReachableDatabaseTest(TestCase):
    def test_a_wrong_query_is_still_a_500_not_a_503(self):
        from django.db import OperationalError, ProgrammingError, connection

        from deliveryhub.errors import database_unreachable

        with self.assertRaises((OperationalError, ProgrammingError)) as raised, connection.cursor() as cursor:
            cursor.execute("SELECT no_such_column FROM no_such_table")
        self.assertFalse(database_unreachable(raised.exception))
