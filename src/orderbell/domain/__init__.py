"""Pure rules of Order Bell: no database, HTTP or web framework is imported here."""
