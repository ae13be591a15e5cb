"""Google Workspace (and Gmail) mailboxes: SMTP submission with XOAUTH2 or an app password."""
