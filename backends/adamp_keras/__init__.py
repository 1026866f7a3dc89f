"""adamp_keras (under construction)."""
