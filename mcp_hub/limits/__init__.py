"""Rate limits, quotas and loop breaking keyed on identity (issue 10)."""
