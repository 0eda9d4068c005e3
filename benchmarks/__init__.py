"""Vigil benchmarks: a seeded workload generator, the end-to-end harness and peer comparisons.

`benchmarks.workload` makes the input; `benchmarks.harness` starts processes, sends bytes and
measures them; `benchmarks.bench_*` modules are the benchmarks `make bench` and people run.
"""
