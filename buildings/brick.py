"""The closed vocabulary of Brick classes and units a site file may use.

Why a closed list: a typo in a Brick class silently unbinds every rule that needs that point, so the site
checker rejects anything not listed here (with a "did you mean" hint). Add a class here, with its expected
unit family, when a building needs one.
"""

from __future__ import annotations

# Units we accept, with the physical quantity they measure. A closed list keeps dashboards and rules honest.
UNITS: dict[str, str] = {
    "degC": "temperature",
    "K": "temperature_delta",
    "%RH": "humidity",
    "%": "percent",
    "ppm": "concentration",
    "%LEL": "flammability",
    "Pa": "pressure",
    "kPa": "pressure",
    "kW": "power",
    "kVA": "apparent_power",
    "kvar": "reactive_power",
    "kWh": "energy",
    "V": "voltage",
    "A": "current",
    "Hz": "frequency",
    "PF": "power_factor",
    "m3": "volume",
    "m3/h": "flow",
    "L/s": "flow",
    "lux": "illuminance",
    "dBm": "signal",
    "COP": "ratio",
    "bool": "state",
    "count": "count",
    "h": "duration",
    "": "dimensionless",
}

# What a value in a unit can physically be: a point's declared range must lie inside (a sanity check on typos
# such as a humidity range of [0, 1000]).
UNIT_LIMITS: dict[str, tuple[float, float]] = {
    "degC": (-100, 1500),
    "K": (-500, 500),
    "%RH": (0, 100),
    "%": (-100, 200),
    "%LEL": (0, 100),
    "ppm": (0, 1_000_000),
    "PF": (-1, 1),
    "Hz": (0, 1000),
    "bool": (0, 1),
    "dBm": (-200, 50),
    "lux": (0, 200_000),
}

# Brick classes used by the sample district and the rule library, with the unit family each expects.
BRICK_CLASSES: dict[str, str | None] = {
    # air temperatures
    "Supply_Air_Temperature_Sensor": "temperature",
    "Return_Air_Temperature_Sensor": "temperature",
    "Mixed_Air_Temperature_Sensor": "temperature",
    "Outside_Air_Temperature_Sensor": "temperature",
    "Zone_Air_Temperature_Sensor": "temperature",
    "Supply_Air_Temperature_Setpoint": "temperature",
    "Zone_Air_Temperature_Setpoint": "temperature",
    "Chilled_Water_Supply_Temperature_Sensor": "temperature",
    "Chilled_Water_Return_Temperature_Sensor": "temperature",
    "Condenser_Water_Supply_Temperature_Sensor": "temperature",
    "Air_Temperature_Sensor": "temperature",
    "Transformer_Temperature_Sensor": "temperature",
    # humidity, air quality, safety
    "Zone_Air_Humidity_Sensor": "humidity",
    "Relative_Humidity_Sensor": "humidity",
    "CO2_Sensor": "concentration",
    "CO_Sensor": "concentration",
    "Combustible_Gas_Sensor": "flammability",
    "Leak_Sensor": "state",
    "Smoke_Detection_Sensor": "state",
    # AHU / VAV controls
    "Supply_Air_Static_Pressure_Sensor": "pressure",
    "Supply_Air_Static_Pressure_Setpoint": "pressure",
    "Supply_Fan_Speed_Command": "percent",
    "Supply_Fan_Status": "state",
    "Heating_Valve_Command": "percent",
    "Cooling_Valve_Command": "percent",
    "Outside_Air_Damper_Command": "percent",
    "Damper_Position_Command": "percent",
    "Supply_Air_Flow_Sensor": "flow",
    "Occupancy_Sensor": "state",
    # chiller plant, pumps, fans
    "Chiller_Status": "state",
    "Chiller_Power_Sensor": "power",
    "Cooling_Load_Sensor": "power",
    "Pump_Status": "state",
    "Pump_Speed_Command": "percent",
    "Fan_Status": "state",
    "Fan_Speed_Command": "percent",
    "Chilled_Water_Flow_Sensor": "flow",
    # lighting, lifts
    "Lighting_Status": "state",
    "Luminance_Sensor": "illuminance",
    "Elevator_Status": "state",
    # electrical
    "Electric_Power_Sensor": "power",
    "Active_Power_Sensor": "power",
    "Peak_Power_Demand_Sensor": "power",
    "Electric_Energy_Sensor": "energy",
    "Voltage_Sensor": "voltage",
    "Phase_Voltage_Sensor": "voltage",
    "Current_Sensor": "current",
    "Phase_Current_Sensor": "current",
    "Power_Factor_Sensor": "power_factor",
    "Frequency_Sensor": "frequency",
    # water, gas
    "Water_Usage_Sensor": "volume",
    "Water_Flow_Sensor": "flow",
    "Gas_Usage_Sensor": "volume",
    # device health from wireless sensors
    "Battery_Level_Sensor": "percent",
    "Signal_Strength_Sensor": "signal",
    # generic
    "Point": None,
}

# Equipment kinds and the Brick equipment class they default to.
EQUIPMENT_BRICK: dict[str, str] = {
    "ahu": "AHU",
    "rtu": "Rooftop_Unit",
    "vav": "VAV",
    "fcu": "Fan_Coil_Unit",
    "chiller": "Chiller",
    "pump": "Pump",
    "fan": "Fan",
    "cooling_tower": "Cooling_Tower",
    "lighting": "Lighting_System",
    "lift": "Elevator",
    "meter": "Electrical_Meter",
    "water_meter": "Water_Meter",
    "gas_meter": "Gas_Meter",
    "switch_room": "Electrical_Room",
    "transformer": "Transformer",
    "garage": "Parking_Structure",
    "zone": "HVAC_Zone",
    "weather": "Weather_Station",
    "sensor_node": "Sensor_Equipment",
    "kitchen": "Space",
}
