"""Networks, losses, tasks and metrics: NumPy from scratch and torch; the export."""
