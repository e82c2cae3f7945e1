"""``python -m panns_core.study --profile NAME``: run the study of a profile."""

import sys

from panns_core.study.workflow import main

sys.exit(main())
