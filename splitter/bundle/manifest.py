"""Moved to `core.manifest` (the core package, standard library only); this alias goes once nothing imports it."""

import sys

import core.manifest

sys.modules[__name__] = core.manifest
