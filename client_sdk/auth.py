"""Keeping a JWT connection authenticated: refresh in band before the token expires.

How it works
------------
With ``token_provider``, every ``welcome`` (and every ``authenticated``) says when the
current token expires. :class:`TokenRefresher` sleeps until :data:`REFRESH_FRACTION` of the
remaining lifetime has passed, asks the provider for a fresh token and sends it in an
``auth`` message on the same connection: subscriptions, pending batches and presence are
untouched. If the server refuses the token, the refresher retries after half the remaining
time while more than :data:`MIN_RETRY_SECONDS` remain; past that the server closes the
connection at expiry (4001) and the client reconnects with a fresh token from the provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from client_sdk.errors import HypertabError, ServerError
from protocol.identity import Auth, Authenticated

log = logging.getLogger(__name__)

REFRESH_FRACTION = 0.8
"""Refresh once this fraction of the token's remaining lifetime has passed."""

MIN_RETRY_SECONDS = 0.5
"""Below this much remaining lifetime a refused refresh is not retried."""


def refresh_delay(expires_at: float, *, now: float, fraction: float = REFRESH_FRACTION) -> float:
    """Seconds from ``now`` until the token expiring at ``expires_at`` should be refreshed."""
    return max(0.0, (expires_at - now) * fraction)


def _auth(token: str, rid: int) -> Auth:
    return Auth(id=rid, token=token)


class TokenRefresher:
    """Refreshes one client's token in band. ``schedule`` after each welcome/authenticated.

    ``credential`` fetches a fresh token (the client's token provider); ``request`` sends a
    request and returns its answer (``Client.request``).
    """

    def __init__(
        self,
        credential: Callable[[], Awaitable[str]],
        request: Callable[[Callable[[int], Any]], Awaitable[Any]],
        *,
        fraction: float = REFRESH_FRACTION,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._credential = credential
        self._request = request
        self.fraction = fraction
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.refreshes = 0
        """Successful in-band refreshes so far."""

    def schedule(self, expires_at: float | None) -> None:
        """Plan the next refresh for a token expiring at ``expires_at`` (None: never)."""
        self.cancel()
        if expires_at is None:
            return
        delay = refresh_delay(expires_at, now=self._clock(), fraction=self.fraction)
        self._task = asyncio.get_running_loop().create_task(self._run(delay, expires_at))

    def cancel(self) -> None:
        """Stop the planned refresh (idempotent)."""
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
        self._task = None

    async def _run(self, delay: float, expires_at: float) -> None:
        while True:
            await asyncio.sleep(delay)
            try:
                answer = await self._request(partial(_auth, await self._credential()))
            except ServerError as exc:
                remaining = expires_at - self._clock()
                log.warning("token refresh refused (%s)", exc.code)
                if remaining <= MIN_RETRY_SECONDS:
                    return  # closed at expiry (4001); the client reconnects with a new token
                delay = remaining / 2
                continue
            except HypertabError:
                return  # connection lost: the reconnect fetches a fresh token anyway
            except Exception as exc:
                # The provider failed: retry like a refusal rather than kill the task.
                log.warning("token provider failed (%s)", type(exc).__name__)
                remaining = expires_at - self._clock()
                if remaining <= MIN_RETRY_SECONDS:
                    return
                delay = remaining / 2
                continue
            if isinstance(answer, Authenticated):
                self.refreshes += 1
                self._task = None
                self.schedule(answer.expires_at)
            return

    async def aclose(self) -> None:
        """Cancel and wait for the refresh task."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
