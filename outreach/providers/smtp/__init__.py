"""Plain SMTP: Google Workspace, Microsoft 365, SES's SMTP interface or any relay."""
