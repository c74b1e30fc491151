"""Data folder, a package so that setuptools ships its files (see pyproject package-data)."""
