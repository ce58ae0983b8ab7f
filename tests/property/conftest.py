"""Hypothesis profiles of the property tests.

``ci`` (the default, what the test command runs): derandomized, so every run draws the same
examples, with a bounded count. ``long``: random seeds and 20x the examples, the benchmark-style
run of the README (`HYPOTHESIS_PROFILE=long`). ``mutation``: derandomized and small, for the
mutation run (bench/mutation.sh), which runs the suites once per mutant.
"""
import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", derandomize=True, max_examples=150, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
settings.register_profile("long", max_examples=3000, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
settings.register_profile("mutation", derandomize=True, max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
