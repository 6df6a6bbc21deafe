"""The shop's two calls into Switchboard: mint a token for a logged-in user, and publish to a user's channel.

A token is an HS256 JWT signed with the secret Switchboard got as --jwt-secret. Switchboard trusts its claims:
`sub` becomes the verified user id (the user's channel is `user:<sub>`), `name` the display name. Publishing
goes through the HTTP publish API with an API key; only the shop's server knows either secret.
"""
import json
import time
import urllib.error
import urllib.request

import jwt
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class SwitchboardError(Exception):
    """Switchboard could not be reached, or it refused a request."""


def _secret():
    secret = settings.SWITCHBOARD_JWT_SECRET
    if len(secret.encode("utf-8")) < 32:
        raise ImproperlyConfigured(
            "SWITCHBOARD_JWT_SECRET must be at least 32 bytes: the same value as Switchboard's --jwt-secret"
        )
    return secret


def user_topic(user_id):
    """The topic every socket of this user follows: `user:<id>`."""
    return f"user:{user_id}"


def mint_token(user, ttl=None, now=None):
    """A short-lived token for `user`, and its expiry in epoch seconds.

    `sub` is the primary key as a string (Switchboard's ids are strings), `name` the username.
    """
    now = int(time.time()) if now is None else int(now)
    exp = now + (settings.SWITCHBOARD_TOKEN_TTL if ttl is None else int(ttl))
    claims = {"sub": str(user.pk), "name": user.get_username(), "iat": now, "exp": exp}
    return jwt.encode(claims, _secret(), algorithm="HS256"), exp


def publish_to_user(user_id, data):
    """Publishes `data` to every connection of the user; returns Switchboard's `{"delivered", "id"}`."""
    if not settings.SWITCHBOARD_API_KEY:
        raise ImproperlyConfigured("SWITCHBOARD_API_KEY is not set: one of Switchboard's --api-key values")
    body = json.dumps({"user": str(user_id), "data": data}).encode("utf-8")
    request = urllib.request.Request(
        f"{settings.SWITCHBOARD_URL}/api/publish",
        data=body,
        method="POST",
        headers={
            "Authorization": f"Bearer {settings.SWITCHBOARD_API_KEY}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.SWITCHBOARD_TIMEOUT) as response:
            return json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as err:
        detail = err.read(500).decode("utf-8", "replace")
        raise SwitchboardError(f"Switchboard answered {err.code} to the publish: {detail}") from err
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        where = settings.SWITCHBOARD_URL
        raise SwitchboardError(f"Could not reach Switchboard at {where}: {reason}") from err
    except ValueError as err:
        raise SwitchboardError(f"Switchboard's answer to the publish is not JSON: {err}") from err
