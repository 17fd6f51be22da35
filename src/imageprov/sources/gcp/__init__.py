"""Google Cloud: Compute Engine images, Artifact Registry Docker images and Cloud
Audit Logs entries."""
