"""Spec files: reading YAML/TOML safely, writing a spec back, and a file of monitor settings."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tuneops._files import write_atomic
from tuneops.errors import SpecError, require

if TYPE_CHECKING:
    from tuneops.spec import Spec


def _read_file(path: Path, what: str = "spec file") -> Any:
    if path.suffix not in (".yaml", ".yml", ".toml"):
        raise SpecError(
            f"{what} {str(path)!r}: expected a .yaml, .yml or .toml file, received {path.suffix!r}."
        )
    try:
        with path.open("rb") as f:
            data = f.read(MAX_SPEC_BYTES + 1)  # a stream (/dev/stdin) has no size to check first
        text = data.decode()
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{what} {str(path)!r} cannot be read: {exc}.") from exc
    if len(data) > MAX_SPEC_BYTES:
        # PyYAML in pure Python parsed 1.15 MB of rows in 7.5 s of CPU: a data file given as the
        # spec held the command for minutes, all of it in memory, before any check
        raise SpecError(
            f"{what} {str(path)!r}: larger than {MAX_SPEC_BYTES // 2**20} MB; a spec is a few "
            "KB. Check that this is the spec (data goes in data.source, as a CSV or Parquet "
            "path)."
        )
    try:
        if path.suffix == ".toml":
            return tomllib.loads(text)
        raw = yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:  # the message has line and column
        kind = path.suffix[1:].upper()
        raise SpecError(f"{what} {str(path)!r} is not valid {kind}: {exc}") from exc
    except RecursionError:  # both parsers recurse per level: [[[...]]] 1,000 deep crashed them
        raise SpecError(
            f"{what} {str(path)!r}: values nested too deeply to read (lists or mappings inside "
            "each other hundreds of levels down); a spec nests a few levels. Check the file's "
            "brackets."
        ) from None
    if _larger_than(raw, MAX_SPEC_VALUES):
        # YAML aliases share one object per anchor, so a 1 KB file of nested aliases expands to
        # billions of values when validated (it held 2.4 GB after a minute): refused here
        raise SpecError(
            f"{what} {str(path)!r}: more than {MAX_SPEC_VALUES:,} values once its YAML aliases "
            "(*name) are expanded; a spec is far smaller. Write the values out, or check for "
            "aliases nested in each other."
        )
    return raw


#: Values a spec file may hold with its YAML aliases expanded (a large spec holds hundreds).
MAX_SPEC_VALUES = 100_000
#: Bytes a spec file may hold (a large spec is a few KB).
MAX_SPEC_BYTES = 4 * 2**20


def _larger_than(value: Any, limit: int) -> bool:
    """Whether ``value`` holds more than ``limit`` values, counting each alias where it is
    used; stops counting at the limit."""
    stack, seen = [value], 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > limit:
            return True
        if isinstance(item, Mapping):
            stack.extend(item.values())
            stack.extend(item.keys())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return False


def read_monitor_settings(path: str | Path) -> dict[str, Any]:
    """The ``monitor`` settings in a YAML or TOML file: the file is a ``monitor`` section, or
    a spec (its ``monitor`` section is read). Validated where they are stored
    (:meth:`tuneops.ops.registry.Registry.configure`).

    Raises:
        SpecError: the file cannot be read or parsed, or holds no mapping of settings.
    """
    path = Path(path)
    raw = _read_file(path, "settings file")
    if isinstance(raw, Mapping) and "monitor" in raw:
        raw = raw["monitor"]
    elif isinstance(raw, Mapping) and {"data", "model", "study"} & set(raw):
        raise SpecError(
            f"settings file {str(path)!r} is a spec without a monitor section; write the "
            "settings under monitor:, or in a file of their own (alpha, slo, alerts, ...)."
        )
    if not isinstance(raw, Mapping) or not raw:
        raise SpecError(
            f"settings file {str(path)!r}: expected a mapping of monitor settings (alpha, slo, "
            f"alerts, ...) or a spec with a monitor section, received {raw!r}."
        )
    return dict(raw)


def dump_spec(spec: Spec, path: str | Path) -> Path:
    """Write a spec as YAML or TOML (by suffix); ``load_spec`` reads it back equal.

    The storage password is masked, as in :meth:`Spec.to_dict`. Written whole or not at all
    (:func:`tuneops._files.write_atomic`): a write that fails keeps the file that was there.

    Raises:
        WriteError: the file could not be written (a full disk, a read-only file system).
    """
    path = Path(path)
    data = spec.to_dict()
    if path.suffix == ".toml":
        tomli_w = require("tomli_w", "toml", "Writing TOML specs")
        text = tomli_w.dumps(_drop_none(data))
    else:
        text = yaml.safe_dump(data, sort_keys=False)
    return write_atomic(path, text.encode("utf-8"))


def _drop_none(value: Any) -> Any:  # TOML has no null
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    return value
