"""The HTTP routes, one module per concern. Each route parses, calls one core function and
returns a public schema."""
