"""Azure: managed images, Compute Gallery image versions, ACR images and their logs."""
