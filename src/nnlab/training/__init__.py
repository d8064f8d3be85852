"""The one training engine (N >= 1 members) and a run around it."""
