"""The operator's side: leads, campaigns, sequences, templates, enrollments, suppression."""
