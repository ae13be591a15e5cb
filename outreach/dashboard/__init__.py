"""The operator's dashboard: reads the other apps, writes only through them."""
