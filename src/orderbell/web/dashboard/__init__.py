"""The staff dashboard (``/dashboard``): sign-in, live board, orders, guests, figures."""
