"""``python -m smile_cli ...``: the same as the ``smile`` command."""
from .entry import main

if __name__ == "__main__":
    main()
