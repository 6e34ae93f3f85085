"""Tracing and test hooks: phase timings (PALMNET_TRACE) and crash points
(PALMNET_CRASH_AT) that `up` passes through on every backend."""
