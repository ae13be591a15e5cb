"""outreach: a self-hosted cold email outreach engine."""
