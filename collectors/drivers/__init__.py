"""Protocol drivers: Modbus TCP/RTU, BACnet/IP, MQTT sensors (one small interface, see base.py)."""
