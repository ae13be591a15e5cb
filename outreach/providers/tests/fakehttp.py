"""The HTTP seam of the ESP APIs, faked: ``requests.Session.request`` answers from a script."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import requests
from requests import Response, Session


@dataclass
class FakeHttp:
    answers: deque[tuple[int, Any] | Exception] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def answer(self, status: int, body: Any) -> None:
        self.answers.append((status, body))

    def fail(self, error: Exception) -> None:
        self.answers.append(error)

    def __call__(self, session: Session, method: str, url: str, **kwargs: Any) -> Response:
        self.requests.append({"method": method, "url": url, **kwargs})
        answer = self.answers.popleft()
        if isinstance(answer, Exception):
            raise answer
        status, body = answer
        response = Response()
        response.status_code = status
        response.url = url
        if isinstance(body, str):
            response._content = body.encode()
            response.headers["Content-Type"] = "text/plain"
        else:
            response._content = json.dumps(body).encode()
            response.headers["Content-Type"] = "application/json"
        response.encoding = "utf-8"
        return response


@contextmanager
def fake_http() -> Iterator[FakeHttp]:
    fake = FakeHttp()
    with mock.patch.object(requests.Session, "request", autospec=True, side_effect=fake):
        yield fake
