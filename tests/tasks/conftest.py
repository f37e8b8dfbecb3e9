import synthetic_layout  # noqa: F401  (registers the test reader)
