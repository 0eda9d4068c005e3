"""Users and access: roles with tenant scopes, argon2 passwords, TOTP, sessions and API tokens."""
