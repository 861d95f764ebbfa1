"""Loopback fakes of the providers and platforms Order Bell talks to (see harness.py)."""
