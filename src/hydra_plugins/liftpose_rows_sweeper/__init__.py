"""Hydra sweeper that runs an explicit list of jobs (the rows of a paper table)."""
