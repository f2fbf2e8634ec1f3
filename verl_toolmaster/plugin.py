"""Imported by verl (entry point group ``verl.plugins``) on every ``import verl``, in every process.

Registrations are deferred with post-import hooks: our pieces are added to a verl registry the moment that
registry's module is imported, so ``import verl`` itself stays as fast as without the add-on.
"""

from __future__ import annotations

import sys

from . import compat


def _version_guard() -> None:
    try:
        compat.check_verl_version()
    except compat.VerlVersionError as e:
        # verl swallows Exceptions raised by plugins; SystemExit gets through, so a mismatch cannot go unnoticed.
        print(f"error: {e} (set VERL_USE_EXTERNAL_PLUGINS=none to use verl without verl-toolmaster)", file=sys.stderr)
        raise SystemExit(2) from None


def install() -> None:
    _version_guard()
    from . import cpu

    if cpu.requested():
        cpu.activate()


install()
