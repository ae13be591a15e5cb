"""The sending engine: message building, provider calls, retries, failover, at-most-once."""
