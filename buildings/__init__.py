"""The portfolio: site files (buildings, devices, equipment, points) and the records database."""

from pathlib import Path

_HERE = Path(__file__).resolve().parent
SAMPLE_SITE = _HERE / "sites" / "yuzhong"
SAMPLE_PROGRAMME = _HERE / "program" / "yuzhong.yaml"


def shown_path(path: Path) -> str:
    """A packaged path as a user would type it: relative when under the working directory, else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except (ValueError, OSError):  # elsewhere, or the working directory is gone
        return str(path)


# The default --site of every command and of the dashboard: the sample district, as a user would type it.
DEFAULT_SITE = shown_path(SAMPLE_SITE)

__all__ = ["DEFAULT_SITE", "SAMPLE_PROGRAMME", "SAMPLE_SITE", "shown_path"]
