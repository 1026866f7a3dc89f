"""adamp_jax (under construction)."""
