"""The sending pool: provider accounts, domains, mailboxes, warm-up and health states."""
