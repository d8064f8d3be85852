"""The shared harness of scripts/reproduce_seed*.py."""
