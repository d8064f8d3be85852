"""The command line's overrides checked the way Hydra will read them, so that a typo gets one
line before Hydra's multi-line report (and before the training stack loads)."""

from __future__ import annotations

import re

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from nnlab.paths import CONF_DIR


def one_line(err: Exception) -> str:
    """Hydra's multi-line composition and parse errors as one line."""
    text = str(err).split("Config search path")[0]
    missing = re.search(r"Could not find '([\w/]+)/([^']+)'", text)
    if missing and not missing.group(1).startswith("hydra"):
        # An unknown option of one of nnlab's config groups: name the choices.
        group, option = missing.groups()
        choices = sorted(
            p.stem for p in (CONF_DIR / group).glob("*.yaml") if not p.stem.startswith("_")
        )
        return f"{group}={option}: allowed: {', '.join(choices)}"
    text = " ".join(line.strip() for line in text.splitlines() if line.strip())
    cause = err.__cause__
    if cause is not None and str(cause).splitlines() and str(cause).splitlines()[0] not in text:
        text += f" ({str(cause).splitlines()[0]})"
    return text.replace("To append to your config use", "to add a new key use")


def check_overrides(args: list[str]) -> str | None:
    """Parse and compose the command line's overrides the way Hydra will, so that a typo gets
    one line instead of Hydra's multi-line report. Sweep values (a,b,c) are Hydra's to expand
    and are left to it."""

    parser = OverridesParser.create()
    parsed = []
    for item in (a for a in args if not a.startswith("-") and "=" in a):
        try:
            parsed += parser.parse_overrides([item])
        except HydraException as err:
            lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
            reason = lines[0] if lines else "syntax error"
            shown = item if item.isprintable() else repr(item)  # a newline stays one line
            reason = reason if reason.isprintable() else repr(reason)
            return f"{shown}: cannot be parsed: {reason} (see Hydra's override grammar)"
    plain = [o.input_line for o in parsed if not o.is_sweep_override()]
    if not plain:
        return None  # nothing to compose beyond the defaults, which Hydra composes next (0.3 s)
    try:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            compose("train", overrides=plain, return_hydra_config=True)
    except HydraException as err:
        return one_line(err)
    return None
