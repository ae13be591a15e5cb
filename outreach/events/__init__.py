"""The events collector: provider webhooks, unsubscribes, replies and bounces over IMAP."""
