"""Dashboard users, roles and sign-in throttling: they live in ``buildings.access`` (the API shares them), and
are re-exported here so the dashboard's code reads as before."""

from __future__ import annotations

from buildings.access import (
    MIN_PASSWORD,
    USERNAME_RE,
    AuthError,
    LoginFailure,
    LoginResult,
    Principal,
    Role,
    ThrottlePolicy,
    User,
    add_user,
    authenticate,
    create_tables,
    list_users,
    set_disabled,
)

__all__ = ["MIN_PASSWORD", "USERNAME_RE", "AuthError", "LoginFailure", "LoginResult", "Principal", "Role",
           "ThrottlePolicy", "User", "add_user", "authenticate", "create_tables", "list_users", "set_disabled"]
