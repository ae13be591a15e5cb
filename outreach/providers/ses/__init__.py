"""AWS SES through the SES v2 API (boto3)."""
