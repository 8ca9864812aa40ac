"""Turn a Krita Python plug-in on in ``kritarc`` without disturbing the rest of the file.

``kritarc`` is a Qt INI file; a general INI writer would re-case keys, drop comments and
re-quote values.  This edits lines: it sets ``enable_<name>=true`` in the ``[python]``
section (adding the section or the key when missing) and leaves every other byte alone.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from smilecore.atomic import write_atomic

_SECTION = re.compile(r"^\s*\[(?P<name>[^\]]*)\]\s*$")


def enable_plugin_text(text: str, plugin: str, section: str = "python") -> str:
    """Return ``text`` with ``enable_<plugin>=true`` set in ``[section]``."""
    key = f"enable_{plugin}"
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.splitlines(keepends=True)
    start = None
    for i, line in enumerate(lines):
        m = _SECTION.match(line)
        if m and m.group("name").strip() == section:
            start = i
            break
    if start is None:
        prefix = text if not text or text.endswith(("\n", "\r")) else text + newline
        gap = newline if prefix.strip() else ""
        return f"{prefix}{gap}[{section}]{newline}{key}=true{newline}"
    end = len(lines)
    for j in range(start + 1, len(lines)):
        if _SECTION.match(lines[j]):
            end = j
            break
    for j in range(start + 1, end):
        name, sep, _value = lines[j].partition("=")
        if sep and name.strip() == key:
            eol = lines[j][len(lines[j].rstrip("\r\n")):] or newline
            lines[j] = f"{key}=true{eol}"
            return "".join(lines)
    # insert after the section's last non-blank line
    insert = end
    while insert > start + 1 and not lines[insert - 1].strip():
        insert -= 1
    if insert > 0 and not lines[insert - 1].endswith(("\n", "\r")):
        lines[insert - 1] += newline
    lines.insert(insert, f"{key}=true{newline}")
    return "".join(lines)


def check_rc_path(rc_path: Path) -> None:
    """Refuse, before anything is installed, a kritarc path that :func:`enable_plugin` could not
    write: a folder or other non-file, a file that cannot be read and written, a parent that is a file."""
    from smilecore.errors import UsageError, WriteError

    rc_path = Path(rc_path)
    if rc_path.is_dir():
        raise UsageError(f"--kritarc {rc_path} is a folder; give the path of the kritarc file itself")
    if rc_path.exists():
        if not rc_path.is_file():
            raise UsageError(f"--kritarc {rc_path} is not a regular file")
        if not os.access(rc_path, os.R_OK | os.W_OK):
            raise WriteError(f"{rc_path}: permission denied (kritarc must be readable and writable)")
        return
    parent = rc_path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"--kritarc {rc_path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise WriteError(f"{rc_path}: cannot create it, folder {parent} is not writable")


def enable_plugin(rc_path: Path, plugin: str) -> bool:
    """Enable ``plugin`` in the kritarc at ``rc_path`` (created if missing); True if the file changed."""
    rc_path = Path(rc_path)
    old = rc_path.read_bytes().decode("utf-8", errors="surrogateescape") if rc_path.exists() else ""
    new = enable_plugin_text(old, plugin)
    if new == old:
        return False
    rc_path.parent.mkdir(parents=True, exist_ok=True)
    data = new.encode("utf-8", errors="surrogateescape")
    write_atomic(rc_path, lambda f: f.write(data))
    return True
