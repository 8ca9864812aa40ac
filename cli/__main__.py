"""``python -m smile_cli ...``: the same as the ``smile`` command."""
from .main import main

if __name__ == "__main__":
    main()
