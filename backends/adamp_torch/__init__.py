"""adamp_torch (under construction)."""
