"""The API specs bundled with klx (package data: klaviyo.yaml, and config.example.yaml copied in at build time)."""
