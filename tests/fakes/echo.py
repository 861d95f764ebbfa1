"""A fake that accepts anything and answers with what it received.

For tests of the HTTP client itself and of plain webhook-style channels: every method
on every path answers ``200`` with ``{"method", "path", "query", "headers", "fields",
"body_size"}`` (``fields``: the parsed form or JSON body).
"""

from __future__ import annotations

from typing import ClassVar

from aiohttp import web

from tests.fakes.harness import FakeServer, RecordedRequest, json_response


class EchoFake(FakeServer):
    name: ClassVar[str] = "echo"

    def add_routes(self) -> None:
        self.route("*", "/{tail:.*}", self.echo)

    async def echo(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        return json_response(
            {
                "method": rec.method,
                "path": rec.path,
                "query": rec.query_string,
                "headers": rec.headers,
                "fields": rec.fields,
                "body_size": len(rec.body),
            }
        )
