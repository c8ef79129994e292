"""Moved to `core.safe_json` (the core package, standard library only); this alias goes once nothing imports it."""

import sys

import core.safe_json

sys.modules[__name__] = core.safe_json
