"""``python -m vitfeat_desktop.selftest``: what the release workflow runs against a source install."""

import sys

from vitfeat_desktop.selftest.runner import main

sys.exit(main())
