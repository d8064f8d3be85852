"""Keep credentials out of the store.

A tracking URI may carry `user:password@`, and a config may interpolate a token from the
environment (`${oc.env:MY_TOKEN}`). Everything nnlab writes to MLflow as text (params, tags,
run names, error messages, the config and overrides artifacts) and every store address it
prints passes through `redact` first.
"""

from __future__ import annotations

import os
import re

from nnlab.env import environ_snapshot

SECRET_NAME = re.compile(r"TOKEN|PASSWORD|PASSWD|SECRET|API_?KEY|CREDENTIAL|AUTH", re.I)
URI_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][\w+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]*@")
MASK = "***"
MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary words and numbers


# The environment as last read (os.environ's own bytes) and the secrets found in it: a
# population redacts ~40 texts a member, and finding the secrets anew each time (decoding and
# matching every variable) took ~0.1 ms, redacting a short text ~0.005 ms.
_last_read: tuple[dict | None, list[str]] = (None, [])


def secret_values() -> list[str]:
    """Values of environment variables whose names say they hold a secret, longest first."""
    global _last_read
    # One C-level copy of the undecoded environment: no other thread can change it meanwhile
    raw = dict(getattr(os.environ, "_data", None) or {}) or None
    if raw is not None and raw == _last_read[0]:
        return _last_read[1]
    found = {
        v
        for k, v in environ_snapshot().items()
        if SECRET_NAME.search(k) and len(v) >= MIN_SECRET_LENGTH
    }
    secrets = sorted(found, key=len, reverse=True)
    _last_read = (raw, secrets)
    return secrets


def redact(text: str) -> str:
    text = URI_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", str(text))
    for secret in secret_values():
        text = text.replace(secret, MASK)
    return text
