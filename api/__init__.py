"""Open data: the read-only HTTP API (app), tokens, resource catalogue and Brick model, city exports, personal
information masking, and paperless evidence (signatures, audit hash chain). See docs/api.md."""
