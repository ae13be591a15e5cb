"""Small helpers with no domain imports: clock, env parsing, secrets, loops."""
