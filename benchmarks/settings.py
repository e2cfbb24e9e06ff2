"""Settings of the servers the benchmarks start: the deployed settings, plus
the one switch only a benchmark needs. BENCH_ENFORCEMENT=off drops the
throttle classes, so requests are neither limited nor metered: the
"unenforced" servers that enforcement's cost is measured against."""

import os

from saas.settings import *  # noqa: F403
from saas.settings import REST_FRAMEWORK

if os.environ.get("BENCH_ENFORCEMENT", "on") == "off":
    REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_CLASSES": []}
