"""Outbound providers: one module each, behind the protocol in ``base.py``."""
