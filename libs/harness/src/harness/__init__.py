"""Dozen's dev harness: what the tests, the audit and the benchmark run Dozen with."""
