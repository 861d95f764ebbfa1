"""The guest tracking page (``/t/{token}``): live progress and message preferences."""
