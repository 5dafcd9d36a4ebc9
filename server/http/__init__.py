"""HTTP concerns of the hub (security pillar 8): the headers every HTTP response carries."""

from __future__ import annotations

from server.http.headers import content_security_policy, new_nonce, security_headers

__all__ = ["content_security_policy", "new_nonce", "security_headers"]
