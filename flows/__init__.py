"""One runbook per module, named after the maintenance guide's procedure."""
