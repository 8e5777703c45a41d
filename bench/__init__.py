"""Benchmarks: `python -m bench.run` (`make bench`); see BENCHMARKS.md."""
