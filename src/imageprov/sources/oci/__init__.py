"""OCI distribution registries and Docker Hub: inventory, notifications, signatures."""
