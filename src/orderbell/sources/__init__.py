"""Order sources: one module per platform, behind the protocol in ``base.py``."""
