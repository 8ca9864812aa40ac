"""File names as people type them."""
from __future__ import annotations

import os
from pathlib import Path


def expand_home(path: str | os.PathLike) -> Path:
    """``path`` with a leading ``~`` or ``~user`` made the home folder, as a shell would; a ``~user`` for no user
    of this system stays as it is (then it is no file, said as such), where :meth:`pathlib.Path.expanduser`
    raises."""
    return Path(os.path.expanduser(os.fspath(path)))
