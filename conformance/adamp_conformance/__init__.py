"""adamp_conformance (under construction)."""
