"""The read model: what the dashboard, the API and the `retrofit` command show, computed once.

Each function takes the data sources (a telemetry Store, the Site, a records session or a Scope) and returns
frozen dataclasses with StrEnum statuses, never untyped dicts; pages, routes and commands only present them.
``insight`` may import buildings, telemetry and rules; dashboard/, api/ and retrofit/ import it.
"""
