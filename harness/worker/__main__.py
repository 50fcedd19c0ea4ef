"""``python -m harness.worker PLAN.json RECORD.json``: run one cell in this process."""

import sys

from harness.worker.cell import main

sys.exit(main())
