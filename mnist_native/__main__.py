"""``python -m mnist_native``: the same as the ``mnist-native`` command."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
