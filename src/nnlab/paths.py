"""Where the project's own folders are. Import-light on purpose (used by the CLI entry)."""

from pathlib import Path

# src/nnlab/paths.py -> the checkout root (nnlab is installed editable from it).
PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = PROJECT_ROOT / "conf"
