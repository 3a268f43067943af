"""The API's JSON parser: a syntax error, a body too deeply nested or not valid UTF-8 is a 400, never a 500."""

import json

from rest_framework import parsers
from rest_framework.exceptions import ParseError

from ..constants import JSON_MAX_DEPTH


class JSONParser(parsers.JSONParser):
    """JSON bodies (UTF-8, RFC 8259), nested at most JSON_MAX_DEPTH levels.

    Python's decoder raises RecursionError on deep nesting (an answer 500), and anything deeper than a few levels
    would only reach code that recurses again (serializers, `json.dumps` of metadata); so depth is refused here.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = parsers.get_encoding(parser_context or {})
        try:
            data = json.loads(stream.read().decode(encoding), parse_constant=_refuse_constant)
        except RecursionError:
            raise ParseError(f"JSON parse error: nested deeper than {JSON_MAX_DEPTH} levels.") from None
        except (ValueError, UnicodeError) as exc:
            raise ParseError(f"JSON parse error: {exc}") from None
        _check_depth(data)
        return data


def _refuse_constant(name):
    raise ValueError(f"{name} is not valid JSON")  # NaN, Infinity: Python's extension, not JSON


def _check_depth(data):
    """ParseError when containers nest deeper than JSON_MAX_DEPTH (iterative: no recursion of our own)."""
    level = [data] if isinstance(data, (dict, list)) else []
    depth = 0
    while level:
        depth += 1
        if depth > JSON_MAX_DEPTH:
            raise ParseError(f"JSON parse error: nested deeper than {JSON_MAX_DEPTH} levels.")
        level = [
            value
            for container in level
            for value in (container.values() if isinstance(container, dict) else container)
            if isinstance(value, (dict, list))
        ]
