"""Orchestration: the only package that calls both the store and the adapters."""
