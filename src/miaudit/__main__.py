"""``python -m miaudit`` is the ``miaudit`` command."""

import sys

from miaudit.cli import main

sys.exit(main())
