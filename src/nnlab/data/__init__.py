"""Datasets: the built-in ones, the user's CSV table, splits and batches."""
