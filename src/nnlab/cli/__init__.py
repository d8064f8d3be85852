"""Entry points: nnlab-train, nnlab-report, nnlab-reproduce."""
