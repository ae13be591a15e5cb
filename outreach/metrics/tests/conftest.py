"""The metrics tests share the pool, sends and events of the alerting tests."""

from outreach.alerts.tests.conftest import _no_aws, noon, pool  # noqa: F401 (fixtures)
