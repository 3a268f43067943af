"""Where a string (an erased address) is still stored: every table of the database, the files under a directory,
every key and value of a Redis database. Used by the erasure tests; searches are case-insensitive."""

import gzip
import zipfile
import zlib
from pathlib import Path

from django.db import connection


def _text(value):
    if value is None:
        return ""
    if isinstance(value, memoryview | bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def in_database(needle):
    """["table.column (row id)"] of every value in the database that contains `needle` (the whole dump, row by row)."""
    needle = needle.lower()
    found = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            columns = [column[0] for column in cursor.description]
            for row in cursor.fetchall():
                for column, value in zip(columns, row, strict=True):
                    if needle in _text(value).lower():
                        found.append(f"{table}.{column} ({row[0]})")
    return found


def _file_texts(path):
    data = path.read_bytes()
    yield data
    if data[:4] == b"PK\x03\x04":  # look inside archives too
        try:
            with zipfile.ZipFile(path) as archive:
                for name in archive.namelist():
                    yield archive.read(name)
        except zipfile.BadZipFile:
            pass
    if data[:2] == b"\x1f\x8b":
        yield gzip.decompress(data)


def in_files(root, needle):
    """Paths of the files under `root` (and members of ZIP archives there) whose bytes contain `needle`."""
    needle = needle.lower().encode()
    found = []
    for path in sorted(Path(root).rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        if any(needle in blob.lower() for blob in _file_texts(path)):
            found.append(str(path))
    return found


def in_redis(client, needle):
    """Keys of the Redis database whose name or value contains `needle`."""
    needle = needle.lower().encode()
    found = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        if kind == "string":
            values = [client.get(key) or b""]
        elif kind == "hash":
            values = [b for pair in client.hgetall(key).items() for b in pair]
        elif kind == "list":
            values = client.lrange(key, 0, -1)
        elif kind == "set":
            values = list(client.smembers(key))
        elif kind == "zset":
            values = client.zrange(key, 0, -1)
        elif kind == "stream":
            values = [b for _, fields in client.xrange(key) for pair in fields.items() for b in pair]
        else:
            values = []
        values = [value or b"" for value in values]
        values += [_inflated(value) for value in values]  # RQ stores job data zlib-compressed
        if needle in key.lower() or any(needle in value.lower() for value in values):
            found.append(key.decode("utf-8", "replace"))
    return found


def _inflated(value):
    try:
        return zlib.decompress(value)
    except zlib.error:
        return b""
