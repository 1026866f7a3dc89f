"""The project's main demonstration (``make demo``)."""
