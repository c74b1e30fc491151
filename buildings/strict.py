"""The pydantic bases for every file we read (site, programme, policy, rule, scenario files): a typo is an error.

- ``Strict``: unknown keys are errors (a misspelt key must not be silently ignored) and a loaded model is frozen
  (a value: nothing downstream may change what the file said).
- ``StrictMutable``: unknown keys are errors, but the model may be changed after loading (the programme file's
  rows are filled in and edited by the commands that write them).

Both populate by name: a field whose YAML key is a Python keyword (``for``, ``class``, ``not``) has that key as
its alias and its Python name as a second spelling; a model without aliases is not affected.

Every package may import this module (it imports nothing else of ours).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Unknown keys are errors; frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class StrictMutable(BaseModel):
    """Unknown keys are errors; not frozen (for models the commands edit after loading)."""

    model_config = ConfigDict(extra="forbid", frozen=False, populate_by_name=True)
