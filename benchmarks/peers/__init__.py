"""Peer programs the benchmarks compare Vigil with, each run from its own config in a temp dir."""
