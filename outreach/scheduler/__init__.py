"""The control plane: quotas, warm-up, windows, pacing, routing and claiming."""
