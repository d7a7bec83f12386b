"""The fault suite: the worker as a black box under kills, rebalances, broker/database/Redis faults and
fuzzed input, each scenario ending with the verifier (tests/faults/verifier.py)."""
