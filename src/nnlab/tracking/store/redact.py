"""Keep credentials out of the store.

A tracking URI may carry `user:password@`, and a config may interpolate a token from the
environment (`${oc.env:MY_TOKEN}`). Everything nnlab writes to MLflow as text (params, tags,
run names, error messages, the config and overrides artifacts) and every store address it
prints passes through `redact` first.
"""

from __future__ import annotations

import re

from nnlab.env import environ_snapshot

SECRET_NAME = re.compile(r"TOKEN|PASSWORD|PASSWD|SECRET|API_?KEY|CREDENTIAL|AUTH", re.I)
URI_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][\w+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]*@")
MASK = "***"
MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary words and numbers


def secret_values() -> list[str]:
    """Values of environment variables whose names say they hold a secret, longest first."""
    found = {
        v
        for k, v in environ_snapshot().items()
        if SECRET_NAME.search(k) and len(v) >= MIN_SECRET_LENGTH
    }
    return sorted(found, key=len, reverse=True)


def redact(text: str) -> str:
    text = URI_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", str(text))
    for secret in secret_values():
        text = text.replace(secret, MASK)
    return text
