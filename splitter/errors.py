"""Moved to `core.errors` (the core package, standard library only); this alias goes once nothing imports it."""

import sys

import core.errors

sys.modules[__name__] = core.errors
