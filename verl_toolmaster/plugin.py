"""Imported by verl (entry point group ``verl.plugins``) on every ``import verl``, in every process."""
