"""The fakes refuse what the real APIs refuse: a table of raw requests per provider."""

from __future__ import annotations

import pytest

from orderbell.channels.http import HttpClient

from .cases import BAD_REQUESTS, BadRequest, ProviderCase


@pytest.mark.parametrize(
    ("case", "bad"), BAD_REQUESTS, ids=[f"{case}-{bad.label}" for case, bad in BAD_REQUESTS]
)
async def test_fake_refuses_what_the_api_refuses(
    case: ProviderCase, bad: BadRequest, http: HttpClient
) -> None:
    async with case.fake() as fake:
        kwargs = bad.build(fake)
        method, path = kwargs.pop("method"), kwargs.pop("path")
        kwargs = {key: value for key, value in kwargs.items() if value is not None}

        resp = await http.request(method, fake.base_url + path, **kwargs)

    assert resp.status == bad.status, resp.text()
    if bad.code is not None:
        assert case.error_code_of(resp) == bad.code, resp.text()
    assert fake.last.status == bad.status
