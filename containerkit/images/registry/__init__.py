"""The OCI distribution client: manifests and platforms, transport with Docker's auth, pull and push."""
