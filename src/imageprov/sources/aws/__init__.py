"""AWS: AMIs and ECR images from boto3 or saved CLI output, events from CloudTrail."""
