"""The portfolio: site files (buildings, devices, equipment, points) and the records database."""
