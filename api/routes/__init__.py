"""The API's routers, one module per area: buildings and their model, telemetry and alarms, the retrofit
programme (projects, subsidies, measured savings), and the resource catalogue."""
