"""The rules engine: fault rules as data (rules/library/*.yaml), bound by Brick class to every building's
equipment, evaluated on event time, with an alarm lifecycle in the records database. See docs/rules.md.

    from rules.model import load_rules          # the library, validated and compiled
    from rules.engine import Engine             # Engine(site, rules).feed(readings) -> [AlarmEvent]
    from rules.alarms import AlarmBook          # AlarmBook(records_url).apply(events) / list() / acknowledge()
"""
